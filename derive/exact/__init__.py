"""Exact references and what a check may conclude: sums over the samples in
rational or error-free float64 arithmetic, the roundings each value went through, the
flush-to-zero allowance, the rounding-error bound and the verdict of each comparison,
and the learning rate below which SGD is stable.

May import: symbolic, tape, problem, models, common.
"""

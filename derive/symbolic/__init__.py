"""The mathematics, in SymPy: the loss for any n as a Sum, the derivation of its
gradient in named steps (each checked equal to sympy.diff), the written-out forms for
this n, and reverse mode by hand (the adjoint of every node of the graph).

May import: problem, models, common.
"""

"""The models and losses, each one registered entry: its SymPy expression, the
TensorFlow computation that matches it (handed the TensorFlow module by the tape, so
nothing here imports it), and the ops of its graph, each with its local derivative.

May import: common.
"""

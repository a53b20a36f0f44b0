"""The tape: running the learner's computation in TensorFlow (the only package that
imports it, and only when a function here runs) -- the gradient, the backward pass node
by node, the training loop -- and what is known of how its CPU kernels add (their order
reproduced in NumPy, the thread count), which the bounds in exact/ rely on.

May import: problem, models, common.
"""

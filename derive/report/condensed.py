"""From three features on, the working of one weight stands for the others.

The derivation, the numbers put in, the backward pass's sums and the update rule of
W_2 ... W_k are those of W_1 with another column of X: shown step by step for each they
fill pages with the same lines. Every one is still derived, proved and checked; the
report shows the steps for W_1 and b, and for the others their results.
"""

from __future__ import annotations

from collections.abc import Sequence

CONDENSED_FROM_FEATURES = 3  # as the residual shorthand r_i (sections.residual_shorthand)


def worked_in_full(parameters: Sequence[str]) -> frozenset[str]:
    """The parameters (W_1 ... W_k, then b) whose working each section shows in full."""
    weights = parameters[:-1]
    if len(weights) < CONDENSED_FROM_FEATURES:
        return frozenset(parameters)
    return frozenset({weights[0], parameters[-1]})

"""How large the forward pass's own values may get: where a non-finite gradient can come
from even though the gradient itself is small.

A gradient's bound M covers the products and sums of its own formula, but the tape
computes the residuals first, and every adjoint after them reads them. With features
(1e38, 1e38, 1e-30) and weights (10, -10, 1), the exact residual is tiny, yet
fl(10 * 1e38) is infinite in float32, inf - inf is NaN, and every gradient -- dL/dW_3,
whose own terms are all small, among them -- is NaN. No arithmetic went wrong that
float32 could have done right: the verdict is an overflow, not a failure.

Each partial sum of the dot product, and the residual itself, is at most the residual
computed on absolute values, |W_1 x_i1| + ... + |W_k x_ik| + |b| + |y_i|, and a correct
computation stays within (1 + gamma_t) of that (t the roundings on the residual's
longest path). Where this reach stays below the smallest magnitude that rounds to
infinity, no correct forward pass leaves the range, and a non-finite tape value must
come from somewhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from ..symbolic.derivation import Symbolic, absolute_form
from .check import PRECISION_BITS, Reach
from .roundings import node_roundings
from .sums import as_columns

# The float64 evaluation errs by a few roundings of 2^-53; this margin makes the reach
# an upper bound, so that it never calls a failure an overflow by falling short.
_FLOAT64_SLACK = 1 + 2.0**-40


class ForwardReach:
    """For one data set: the forward pass's reach at any parameter values."""

    def __init__(
        self,
        symbolic: Symbolic,
        x: Sequence[float] | Sequence[Sequence[float]],
        y: Sequence[float],
        dtype: str,
    ) -> None:
        loss = symbolic.loss_definition
        t = node_roundings(symbolic.model, loss, loss.graph[0].name, dtype)
        u = Fraction(1, 2 ** PRECISION_BITS[dtype])
        self.growth = float(1 + t * u / (1 - t * u)) * _FLOAT64_SLACK
        self.function = symbolic.sample_function(absolute_form(symbolic.residual))
        self.data = tuple(np.abs(v) for v in (*as_columns(x), np.asarray(y, dtype=np.float64)))

    def per_sample(self, parameters: Sequence[Fraction | float]) -> np.ndarray:
        """Each sample's reach (inf where it is beyond float64 too)."""
        absolute = [abs(float(p)) for p in parameters]
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.broadcast_to(
                np.asarray(self.function(*absolute, *self.data), dtype=np.float64),
                self.data[-1].shape,
            )
            return np.where(np.isnan(values), np.inf, values * self.growth)

    def at(self, parameters: Sequence[Fraction | float]) -> Reach:
        """The largest reach over the samples, and where."""
        return largest(self.per_sample(parameters))


def largest(reaches: np.ndarray) -> Reach:
    index = int(np.argmax(reaches))
    return Reach(magnitude=float(reaches[index]), sample=index + 1)

"""Where the tape may take the other branch: a residual within its rounding error of a kink.

|r| has no derivative at r = 0. TensorFlow's gradient of Abs is the upstream adjoint
times sign(fl(r)): the sign of the residual as the tape ROUNDED it, while the exact
reference takes sign(r). Beyond r's own rounding-error bound,

    |r - kink| > gamma_t M_r + (1 + gamma_t) lambda S_r

(t the roundings of the residual as the tape computes it, M_r its computation on
absolute values, S_r its flush-to-zero sensitivity: the bound of every checked value,
:mod:`derive.exact.check`), fl(r) lies on the same side of the kink as r, and the
branch the tape takes is the reference's. Within it the tape may take the other one,
and its gradient may then differ from the reference by a whole term (2 |x_i| / n for
|r|) without any error in its arithmetic: no verdict is possible, so the gradient's
check is inconclusive, never a pass and never a fail. The loss itself is continuous at
the kink (|r| is), and its check stays as it is.

A loss lists its kinks (values of the residual) in its registry entry; the mean
squared error has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from ..symbolic.derivation import Y_I, Symbolic, absolute_form
from .adjoint_values import exact_value
from .check import PRECISION_BITS, SMALLEST_NORMAL
from .kink import Kink
from .roundings import node_roundings
from .sums import as_columns
from .underflow import node_sensitivity

# The float64 screen that picks the samples to decide exactly errs by far less than
# this share of M_r + |kink| (a few roundings of 2^-53); it only has to let every sample
# within the bound through.
_SCREEN_SLACK = 2.0**-40


class KinkWatch:
    """For one data set: the first sample near a kink, at any parameter values."""

    def __init__(
        self,
        symbolic: Symbolic,
        x: Sequence[float] | Sequence[Sequence[float]],
        y: Sequence[float],
        dtype: str,
        switches: bool = False,
    ) -> None:
        """`x`: one feature's values, or the columns of several. `switches`: watch the
        loss's branch switches too (for the adjoints of the
        branches' nodes, which jump there; the gradients do not)."""
        loss = symbolic.loss_definition
        self.kinks = tuple(Fraction(k) for k in loss.kinks)
        self.switches = tuple(Fraction(k) for k in loss.switches) if switches else ()
        self.kinks = self.kinks + self.switches
        if not self.kinks:
            return
        node = loss.graph[0].name  # the residual u_i = inner(y_hat_i, y_i)
        t = node_roundings(symbolic.model, loss, node, dtype)
        u = Fraction(1, 2 ** PRECISION_BITS[dtype])
        self.gamma = t * u / (1 - t * u)
        self.flush = (1 + self.gamma) * Fraction(SMALLEST_NORMAL[dtype])
        self.symbols = list(symbolic.parameters.values())
        self.residual = symbolic.residual
        self.magnitude = absolute_form(symbolic.residual)
        self.sensitivity = node_sensitivity(symbolic, node, dtype)
        self.functions = [
            symbolic.sample_function(e) for e in (self.residual, self.magnitude, self.sensitivity)
        ]
        self.columns, self.y = as_columns(x), np.asarray(y, dtype=np.float64)
        self.features = symbolic.features

    def near(self, parameters: Sequence[Fraction]) -> Kink | None:
        """The first sample (1-based) within its bound of a kink at these parameters."""
        return next(iter(self.every(parameters, first=True).values()), None)

    def every(self, parameters: Sequence[Fraction], first: bool = False) -> dict[int, Kink]:
        """Every sample within its bound of a kink, by 0-based index (`first`: one only)."""
        found: dict[int, Kink] = {}
        if not self.kinks:
            return found
        floats = [float(p) for p in parameters]
        absolute = [abs(p) for p in floats]
        data = (*self.columns, self.y)
        data_abs = tuple(abs(v) for v in data)
        value, magnitude, sensitivity = (
            np.broadcast_to(np.asarray(f(*a, *d), dtype=np.float64), self.y.shape)
            for f, a, d in zip(
                self.functions,
                (floats, absolute, absolute),
                (data, data_abs, data_abs),
                strict=True,
            )
        )
        bound = float(self.gamma) * magnitude + float(self.flush) * sensitivity
        for kink in self.kinks:
            slack = _SCREEN_SLACK * (magnitude + abs(float(kink)))
            for index in np.flatnonzero(np.abs(value - float(kink)) <= 2 * bound + slack):
                near = self._exact(parameters, int(index), kink)
                if near is not None:
                    found.setdefault(int(index), near)
                    if first:
                        return found
        return found

    def _exact(self, parameters: Sequence[Fraction], index: int, kink: Fraction) -> Kink | None:
        row = (Fraction(float(c[index])) for c in self.columns)
        values = {
            **dict(zip(self.symbols, parameters, strict=True)),
            **dict(zip(self.features, row, strict=True)),
            Y_I: Fraction(float(self.y[index])),
        }
        absolute = {key: abs(v) for key, v in values.items()}
        residual = exact_value(self.residual, values)
        bound = self.gamma * exact_value(self.magnitude, absolute) + self.flush * exact_value(
            self.sensitivity, absolute
        )
        if abs(residual - kink) <= bound:
            return Kink(index + 1, residual, bound, kink, switch=kink in self.switches)
        return None

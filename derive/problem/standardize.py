"""Training on z-scores, and the fitted line mapped back to the data's own units.

With z = (v - mu) / sigma for x and for y (population standard deviation, in float64
from the given data), the model fitted on z-scores, z_y ~ W z_x + b, predicts

    y ~ mu_y + sigma_y (W (x - mu_x) / sigma_x + b)
      = (W sigma_y / sigma_x) x + (mu_y + sigma_y b - (W sigma_y / sigma_x) mu_x),

so in the original units W_orig = W sigma_y / sigma_x and
b_orig = mu_y + sigma_y b - W_orig mu_x (:meth:`Standardization.original`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar

import numpy as np

from ..common.errors import InputError

# The mapping back, as shown in the report.
FORMULA_W = r"W_{\mathrm{orig}} = W \, \frac{\sigma_{y}}{\sigma_{x}}"
FORMULA_B = r"b_{\mathrm{orig}} = \mu_{y} + \sigma_{y} \, b - W_{\mathrm{orig}} \, \mu_{x}"
DERIVATION = (
    r"\hat{y} = \mu_{y} + \sigma_{y} \left(W \, \frac{x - \mu_{x}}{\sigma_{x}} + b\right)"
    r" = W_{\mathrm{orig}} \, x + b_{\mathrm{orig}}"
)


@dataclass(frozen=True)
class Standardization:
    """The means and population standard deviations the z-scores were taken with."""

    mean_x: float
    std_x: float
    mean_y: float
    std_y: float
    # The mapping back, as LaTeX for the report.
    derivation_latex: ClassVar[str] = DERIVATION
    formula_w: ClassVar[str] = FORMULA_W
    formula_b: ClassVar[str] = FORMULA_B

    def original(self, parameters: Mapping[str, float]) -> dict[str, float]:
        """W and b of the linear model on z-scores as a line in the original units,
        computed exactly from the float values and rounded once."""
        w, b = Fraction(parameters["W"]), Fraction(parameters["b"])
        mu_x, sigma_x = Fraction(self.mean_x), Fraction(self.std_x)
        mu_y, sigma_y = Fraction(self.mean_y), Fraction(self.std_y)
        w_orig = w * sigma_y / sigma_x
        return {"W": float(w_orig), "b": float(mu_y + sigma_y * b - w_orig * mu_x)}


def _moments(values: Sequence[float], column: str) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    # Equal values are the zero variance; their float mean and std need not be exactly 0.
    if np.all(array == array[0]):
        raise InputError(
            f"--standardize needs values that vary, but every {column} is the same", array[0]
        )
    return float(np.mean(array)), float(np.std(array))  # population std: divided by n


def standardize(
    x: Sequence[float], y: Sequence[float]
) -> tuple[Standardization, tuple[float, ...], tuple[float, ...]]:
    """The moments and the z-scores of x and y, in float64 (the dtype's rounding follows)."""
    mean_x, std_x = _moments(x, "x")
    mean_y, std_y = _moments(y, "y")
    zx = (np.asarray(x, dtype=np.float64) - mean_x) / std_x
    zy = (np.asarray(y, dtype=np.float64) - mean_y) / std_y
    return (
        Standardization(mean_x, std_x, mean_y, std_y),
        tuple(zx.tolist()),
        tuple(zy.tolist()),
    )

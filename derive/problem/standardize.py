"""Training on z-scores: z = (v - mu) / sigma for x and for y (population standard
deviation, in float64 from the given data), and the fitted parameters mapped back to the
data's own units by the model's entry (its ``original_units`` capability; for the linear
model W_orig = W sigma_y / sigma_x and b_orig = mu_y + sigma_y b - W_orig mu_x).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from ..common.errors import InputError

if TYPE_CHECKING:
    from ..models.registry import OriginalUnits


@dataclass(frozen=True)
class Standardization:
    """The means and population standard deviations the z-scores were taken with."""

    mean_x: float
    std_x: float
    mean_y: float
    std_y: float

    def original(self, parameters: Mapping[str, float], units: OriginalUnits) -> dict[str, float]:
        """The parameters fitted on z-scores in the data's own units, as the model's
        entry maps them (`units`), computed exactly from the float values and rounded once."""
        exact = {name: Fraction(value) for name, value in parameters.items()}
        moments = (Fraction(v) for v in (self.mean_x, self.std_x, self.mean_y, self.std_y))
        return {name: float(v) for name, v in units.convert(exact, *moments).items()}


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

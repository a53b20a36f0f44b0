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
    """The means and population standard deviations the z-scores were taken with: one
    per feature for x, and y's."""

    means_x: tuple[float, ...]
    stds_x: tuple[float, ...]
    mean_y: float
    std_y: float

    @property
    def mean_x(self) -> float:
        """The one feature's mean (one feature only)."""
        (mean,) = self.means_x
        return mean

    @property
    def std_x(self) -> float:
        (std,) = self.stds_x
        return std

    def original(self, parameters: Mapping[str, float], units: OriginalUnits) -> dict[str, float]:
        """The parameters fitted on z-scores in the data's own units, as the model's
        entry maps them (`units`), computed exactly from the float values and rounded once."""
        exact = {name: Fraction(value) for name, value in parameters.items()}
        means = tuple(Fraction(v) for v in self.means_x)
        stds = tuple(Fraction(v) for v in self.stds_x)
        converted = units.convert(exact, means, stds, Fraction(self.mean_y), Fraction(self.std_y))
        return {name: float(v) for name, v in converted.items()}


def _moments(values: Sequence[float], column: str) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    # Equal values are the zero variance; their float mean and std need not be exactly 0.
    if np.all(array == array[0]):
        raise InputError(
            f"--standardize needs values that vary, but every {column} is the same", array[0]
        )
    return float(np.mean(array)), float(np.std(array))  # population std: divided by n


def standardize(
    columns: Sequence[Sequence[float]], y: Sequence[float], names: Sequence[str] = ("x",)
) -> tuple[Standardization, tuple[tuple[float, ...], ...], tuple[float, ...]]:
    """The moments and the z-scores of each feature column (named `names` in messages)
    and of y, in float64 (the dtype's rounding follows)."""
    moments = [_moments(column, name) for column, name in zip(columns, names, strict=True)]
    mean_y, std_y = _moments(y, "y")
    scores = tuple(
        tuple(((np.asarray(column, dtype=np.float64) - mean) / std).tolist())
        for column, (mean, std) in zip(columns, moments, strict=True)
    )
    zy = (np.asarray(y, dtype=np.float64) - mean_y) / std_y
    return (
        Standardization(tuple(m for m, _ in moments), tuple(s for _, s in moments), mean_y, std_y),
        scores,
        tuple(zy.tolist()),
    )

"""The loss as a function of the parameters for this data: its exact data sums, the
least-squares optimum where it is unique, and what the plots need of it (PlotSpec)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy as sp

from ..common.numbers import as_float
from ..exact.sums import Evaluator, affine_solution, data_sums
from ..problem.problem import Problem
from ..symbolic.derivation import X_I, Symbolic
from .plotspec import PlotSpec

# Why there is no optimum to show, for any model: the derivatives are linear in the
# parameters but vanish on a whole set of them, or they are not linear at all.
NOT_UNIQUE = (
    "The least-squares solution is not unique here: the derivatives vanish on a whole set "
    "of parameter values (for the linear model: a single sample, or all x equal), and "
    "they all fit equally well."
)
NO_CLOSED_FORM = (
    "The derivatives are not linear in the parameters, so the optimum has no closed form "
    "to compare with."
)


@dataclass(frozen=True)
class Landscape:
    """The loss for this data as a function of the parameters, and where it is smallest."""

    loss: Evaluator
    solution: tuple[Fraction, ...] | None  # the exact least-squares optimum
    affine: bool  # the derivatives are linear in the parameters (a closed form exists)
    prediction_polynomial: Mapping[tuple[int, ...], float] | None  # y_hat(x, parameters)

    def plot_spec(self, problem: Problem, names: Sequence[str]) -> PlotSpec:
        # A plot shows at most MAX_PLOTTED_POINTS samples, evenly spread over the data.
        chosen = np.unique(np.linspace(0, problem.n - 1, MAX_PLOTTED_POINTS).astype(int))
        return PlotSpec(
            names=tuple(names),
            # the first feature's values: the plots draw x only for one feature
            x=tuple(problem.columns[0][i] for i in chosen),
            y=tuple(problem.y[i] for i in chosen),
            samples=problem.n,
            loss_polynomial={e: as_float(c) for e, c in (self.loss.polynomial or {}).items()},
            prediction_polynomial=self.prediction_polynomial,
            optimum=(
                None
                if self.solution is None
                else {n: as_float(v) for n, v in zip(names, self.solution, strict=True)}
            ),
            optimum_loss=(
                None if self.solution is None else as_float(self.loss.value(self.solution))
            ),
            display_step=problem.training.display_step,
            standardized=problem.standardized is not None,
            loss_name=problem.loss,
        )


def landscape(problem: Problem, symbolic: Symbolic) -> Landscape:
    data = data_sums(problem.columns, problem.y)
    gradients = [Evaluator(symbolic, d.result, data) for d in symbolic.derivations.values()]
    return Landscape(
        loss=Evaluator(symbolic, symbolic.loss, data),
        solution=affine_solution(gradients),
        affine=all(
            g.polynomial is not None and all(sum(e) <= 1 for e in g.polynomial) for g in gradients
        ),
        prediction_polynomial=_prediction_polynomial(symbolic),
    )


def plot_spec(problem: Problem, symbolic: Symbolic) -> PlotSpec:
    """What the plots need besides the trace; known before training."""
    return landscape(problem, symbolic).plot_spec(problem, list(symbolic.parameters))


def _prediction_polynomial(symbolic: Symbolic) -> dict[tuple[int, ...], float] | None:
    """y_hat as a polynomial in x and the parameters, for the fitted line and for a loss
    drawn from the samples; None for several features (no line against one x)."""
    if symbolic.model.features != 1:
        return None
    x = sp.Symbol("x_s")
    try:
        poly = sp.Poly(symbolic.prediction.subs(X_I, x), x, *symbolic.parameters.values())
    except sp.PolynomialError:
        return None
    return {tuple(e): as_float(c) for e, c in poly.terms()}


MAX_PLOTTED_POINTS = 500  # enough to show the cloud; each point is an element in the PDF

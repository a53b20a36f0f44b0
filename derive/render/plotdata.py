"""The numbers the plots show, from the training facts or straight from the tape's
Trace (the training process draws the plots before any check is made)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..models.registry import get_loss
from ..report.plotspec import PlotSpec, Polynomial


@dataclass(frozen=True)
class PlotData:
    """What the plots show, as plain numbers."""

    spec: PlotSpec
    steps: Sequence[int]  # 0 .. the last step with finite values
    parameters: Mapping[str, Sequence[float]]
    loss: Sequence[float]
    gradients: Mapping[str, Sequence[float]]
    display: Sequence[int]  # the displayed steps (arrows, markers)
    diverged_at: int | None


def plot_data(training) -> PlotData:  # type: ignore[no-untyped-def]
    """The plots' numbers from the training facts (derive.report.training_facts.TrainingFacts)."""
    series = training.series
    return PlotData(
        spec=training.plot_spec,
        steps=series.steps,
        parameters=series.parameters,
        loss=series.loss,
        gradients=series.gradients,
        display=[row.step for row in training.rows if row.finite],
        diverged_at=training.diverged_at,
    )


def plot_data_from_trace(spec: PlotSpec, trace) -> PlotData:  # type: ignore[no-untyped-def]
    """The same numbers straight from a derive.tape.training.Trace, before any check is made
    (the training process draws the plots while the checks run elsewhere)."""
    end = max(trace.last_finite(), 0) + 1

    def values(array: np.ndarray) -> tuple[float, ...]:
        return tuple(map(float, array[:end]))

    return PlotData(
        spec=spec,
        steps=tuple(range(end)),
        parameters={name: values(trace.parameters[name]) for name in spec.names},
        loss=values(trace.loss),
        gradients={name: values(trace.gradients[name]) for name in spec.names},
        display=[s for s in trace.display_steps(spec.display_step) if s < end],
        diverged_at=trace.first_non_finite(),
    )


def evaluate(polynomial: Polynomial, *values: np.ndarray | float) -> np.ndarray:
    total = np.zeros(np.broadcast(*values).shape) if values else np.zeros(())
    for exponents, coefficient in polynomial.items():
        term = np.full(total.shape, coefficient, dtype=float)
        for value, exponent in zip(values, exponents, strict=False):
            if exponent:
                term = term * np.asarray(value, dtype=float) ** exponent
        total = total + term
    return total


def loss_surface(spec: PlotSpec, *parameters: np.ndarray) -> np.ndarray:
    """L over a grid of the parameters: from its polynomial, or, for a loss that is none
    (|r|), as the mean of the loss's per-sample values over the plotted samples
    (all of them up to PlotSpec's limit, else an even spread: a picture, not a check)."""
    if spec.loss_polynomial or spec.prediction_polynomial is None:
        return evaluate(spec.loss_polynomial, *parameters)
    per_sample = get_loss(spec.loss_name).numeric
    assert per_sample is not None, "a loss without a polynomial declares its numeric form"
    total = np.zeros(np.broadcast(*parameters).shape)
    for x, y in zip(spec.x, spec.y, strict=True):
        residual = evaluate(spec.prediction_polynomial, x, *parameters) - y
        total = total + per_sample(residual)
    return total / max(len(spec.x), 1)

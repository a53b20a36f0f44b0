"""What the training plots need besides the run itself, known before training: the data
(a subsample of it for large data), the loss and the prediction as polynomials in the
parameters, the optimum. Facts: render/plots draws them, and the training process is
sent them to draw while the checks run here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..models.registry import DEFAULT_LOSS

Polynomial = Mapping[tuple[int, ...], float]


@dataclass(frozen=True)
class PlotSpec:
    """What the plots need besides the training run; known before training."""

    names: tuple[str, ...]  # the parameters, e.g. ("W", "b")
    x: Sequence[float]
    y: Sequence[float]
    loss_polynomial: Polynomial  # L(parameters) for this data
    prediction_polynomial: Polynomial | None  # y_hat(x, parameters), exponents of (x, *names)
    optimum: Mapping[str, float] | None
    optimum_loss: float | None
    display_step: int
    samples: int = 0  # how many samples the data has; x and y may be a subsample
    lang: str = "en"  # the language of titles, labels and legends
    standardized: bool = False  # x and y are z-scores (--standardize): the axes say so
    # A loss that is no polynomial in the parameters (loss_polynomial empty) is drawn
    # from the samples: the registered loss
    loss_name: str = DEFAULT_LOSS

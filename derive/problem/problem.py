"""The problem a report explains: data, model, loss, initial values and dtype.

A :class:`Problem` is validated once, here, and immutable afterwards. It keeps the
data both as given and as the tape sees it (rounded to the tape's dtype), because
an exact reference must use the values TensorFlow actually computed with.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..common.errors import InputError
from ..models.registry import (
    DEFAULT_HUBER_DELTA,
    DEFAULT_LOSS,
    DEFAULT_MODEL,
    Loss,
    Model,
    check_labels,
    check_pairing,
    get_loss,
    get_model,
)
from .data import BUILTIN_DATASETS, Dataset, FeatureColumns, several_features
from .standardize import Standardization
from .standardize import standardize as standardize_data

__all__ = ["BUILTIN_DATASETS", "Dataset", "several_features"]

DTYPES = ("float32", "float64")
MODES = ("eager", "function", "xla")  # how the tape runs (derive.tape.gradient)


@dataclass(frozen=True)
class Initial:
    """Initial parameter values as the tape holds them, and where they came from."""

    values: Mapping[str, float]  # rounded to the dtype, as stored in tf.Variable
    source: str  # "pinned" or "random"
    seed: int | None


@dataclass(frozen=True)
class Training:
    steps: int = 1000
    learning_rate: float = 0.01
    display_step: int = 50


@dataclass(frozen=True)
class Problem(FeatureColumns):
    """Everything that determines a report. Built by :func:`make_problem`."""

    name: str
    dataset: Dataset
    dtype: str
    x: tuple[float, ...]  # as the tape sees them: rounded to dtype (one feature; else ())
    y: tuple[float, ...]
    initial: Initial
    model: str = DEFAULT_MODEL  # a registered model's name (an entry: see model_entry)
    loss: str = DEFAULT_LOSS
    training: Training = field(default_factory=Training)
    standardized: Standardization | None = None  # x and y are z-scores of the given data
    # How the tape runs, as the learner's script may: "eager", "function" (tf.function)
    # or "xla" (tf.function(jit_compile=True)).
    mode: str = "eager"
    # Huber's threshold as the tape holds it (Keras casts it to the dtype); None otherwise
    huber_delta: float | None = None
    # k >= 2 feature columns as the tape sees them (x is then empty); () for one feature
    features: tuple[tuple[float, ...], ...] = ()

    @property
    def n(self) -> int:
        return len(self.y)

    # The Problem holds names, not entries: it crosses to the training process, and an
    # entry's functions (lambdas) do not pickle. Every stage reads the entries from here.
    @property
    def model_entry(self) -> Model:
        return get_model(self.model, self.k)

    @property
    def loss_entry(self) -> Loss:
        delta = None if self.huber_delta is None else Fraction(self.huber_delta)
        return get_loss(self.loss, delta, self.k)

    def exact(self, values: Sequence[float]) -> list[Fraction]:
        """The dtype-rounded values as exact rationals (every float is one)."""
        return [Fraction(v) for v in values]


def round_to_dtype(
    values: Sequence[float], dtype: str, what: str, names: Sequence[str] | None = None
) -> tuple[float, ...]:
    """Round to the tape's dtype, refusing what the dtype cannot hold. A refused value is
    named by its entry in ``names`` (parameters), or else by its sample's number."""
    array = np.asarray(values, dtype=np.float64)
    not_finite = np.flatnonzero(~np.isfinite(array))
    if not_finite.size:
        index = int(not_finite[0])
        where = _entry(what, index, names)
        raise InputError(f"{where} is not a finite number", float(array[index]))
    with np.errstate(over="ignore"):
        rounded = array.astype(dtype)
    overflow = np.flatnonzero(~np.isfinite(rounded))
    if overflow.size:
        index = int(overflow[0])
        raise InputError(f"{_entry(what, index, names)} overflows {dtype}", float(array[index]))
    return tuple(rounded.astype(np.float64).tolist())


def _entry(what: str, index: int, names: Sequence[str] | None) -> str:
    """'x of sample 2' or '--init value for W': the position, never confused with the value."""
    if names is not None:
        return f"{what} value for {names[index]}"
    return f"{what} of sample {index + 1}"


def draw_seed() -> int:
    return secrets.randbelow(2**31)


def initial_values(
    parameters: Sequence[str],
    dtype: str,
    pinned: Mapping[str, float] | None,
    seed: int | None,
) -> Initial:
    """Pinned values, or uniform in [0, 1) like ``np.random.random()`` in the reference script."""
    # An empty mapping is a pin without values, refused below; never silently random.
    if pinned is not None:
        unknown = sorted(set(pinned) - set(parameters))
        if unknown:
            raise InputError("unknown parameter in --init", unknown[0])
        missing = [p for p in parameters if p not in pinned]
        if missing:
            raise InputError("--init needs a value for every parameter; missing", missing[0])
        rounded = round_to_dtype([pinned[p] for p in parameters], dtype, "--init", parameters)
        return Initial(dict(zip(parameters, rounded, strict=True)), "pinned", seed)
    if seed is None:
        seed = draw_seed()
    # The legacy generator, drawn in parameter order, as the reference script does.
    generator = np.random.RandomState(seed)
    drawn = [float(generator.random_sample()) for _ in parameters]
    rounded = round_to_dtype(drawn, dtype, "random initial", parameters)
    return Initial(dict(zip(parameters, rounded, strict=True)), "random", seed)


# Every step's row is kept and checked exactly, about half a millisecond a step at two
# samples: a million steps take minutes, more would take hours and, towards the int32
# step counter of the compiled loop (2**31 - 1), more memory than the machine has.
MAX_STEPS = 1_000_000

# Keras optimizers hold the learning rate in float32, whatever the tape's dtype.
LEARNING_RATE_DTYPE = np.float32


def _check_steps(steps: int) -> None:
    if steps < 0:
        raise InputError("--steps must not be negative", steps)
    if steps > MAX_STEPS:
        raise InputError(f"--steps must be at most {MAX_STEPS:,}", steps)


def _check_learning_rate(learning_rate: float) -> None:
    """A positive normal float32 number: the optimizer rounds to float32, where 1e39
    is infinite and 1e-50 is zero (a run that "passes" without training)."""
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise InputError("--lr must be a positive number", learning_rate)
    limits = np.finfo(LEARNING_RATE_DTYPE)
    if learning_rate > float(limits.max):
        raise InputError(
            f"--lr overflows float32, the optimizer's type (at most {limits.max:.8g})",
            learning_rate,
        )
    if learning_rate < float(limits.tiny):
        raise InputError(
            f"--lr is below float32's smallest normal number {limits.tiny:.8g}", learning_rate
        )


def make_problem(
    dataset: Dataset,
    *,
    dtype: str = "float32",
    init: Mapping[str, float] | None = None,
    seed: int | None = None,
    name: str | None = None,
    training: Training | None = None,
    model: str = DEFAULT_MODEL,
    loss: str = DEFAULT_LOSS,
    standardize: bool = False,
    mode: str = "eager",
    huber_delta: float | None = None,
) -> Problem:
    """Validate the inputs and freeze them into a :class:`Problem`; with `standardize`
    the tape sees z-scores of x and y (:mod:`derive.problem.standardize`)."""
    if dtype not in DTYPES:
        raise InputError("unknown dtype; choose float32 or float64", dtype)
    if mode not in MODES:
        raise InputError("unknown mode; choose eager, function or xla", mode)
    columns = dataset.columns
    definition = get_model(model, len(columns))
    check_pairing(definition, get_loss(loss))
    check_labels(get_loss(loss), dataset.y)
    delta = _huber_delta(loss, huber_delta, dtype)
    for number, column in enumerate(columns, start=1):
        if len(column) != len(dataset.y):
            x = "x" if len(columns) == 1 else f"x{number}"
            raise InputError(
                f"{x} and y have different lengths", f"{len(column)} {x}, {len(dataset.y)} y"
            )
    if not dataset.y:
        raise InputError("no samples in the data", dataset.name)
    if seed is not None and not 0 <= seed < 2**32:
        raise InputError("--seed must be between 0 and 2**32 - 1", seed)
    training = training or Training()
    _check_learning_rate(training.learning_rate)
    _check_steps(training.steps)
    if training.display_step < 1:
        raise InputError("--display-step must be at least 1", training.display_step)
    standardized = None
    if standardize and definition.original_units is None:
        raise InputError("--standardize needs a model that maps its parameters back", model)
    names = ["x"] if len(columns) == 1 else [f"x{j}" for j in range(1, len(columns) + 1)]
    if standardize:
        # The moments come from the data as given (float64); the tape sees z-scores.
        given = [round_to_dtype(c, "float64", w) for c, w in zip(columns, names, strict=True)]
        given_y = round_to_dtype(dataset.y, "float64", "y")
        standardized, scores, zy = standardize_data(given, given_y, names)
        rounded = [round_to_dtype(z, dtype, w) for z, w in zip(scores, names, strict=True)]
        y = round_to_dtype(zy, dtype, "y")
    else:
        rounded = [round_to_dtype(c, dtype, w) for c, w in zip(columns, names, strict=True)]
        y = round_to_dtype(dataset.y, dtype, "y")
    x, features = (rounded[0], ()) if len(rounded) == 1 else ((), tuple(rounded))
    initial = initial_values(definition.parameters, dtype, init, seed)
    return Problem(
        name=name or dataset.name,
        dataset=dataset,
        dtype=dtype,
        x=x,
        y=y,
        initial=initial,
        model=model,
        loss=loss,
        training=training,
        standardized=standardized,
        mode=mode,
        huber_delta=delta,
        features=features,
    )


def _huber_delta(loss: str, delta: float | None, dtype: str) -> float | None:
    """Huber's threshold rounded to the dtype, as Keras casts it; refused for other losses
    (a silently ignored flag would let a learner think it changed something)."""
    if loss != "huber":
        if delta is not None:
            raise InputError("--huber-delta needs --loss huber", delta)
        return None
    if dtype != "float32":
        # Keras's Huber casts y and y_pred to its own dtype (floatx, float32): a float64
        # tape would compute it in float32 and the replay would not be the script's
        raise InputError("--loss huber computes in float32 (Keras casts to it); not with", dtype)
    if delta is None:
        return float(DEFAULT_HUBER_DELTA)
    if not math.isfinite(delta) or delta <= 0:
        raise InputError("--huber-delta must be a positive number", delta)
    (rounded,) = round_to_dtype([delta], dtype, "--huber-delta", ("delta",))
    with np.errstate(over="ignore"):
        squared = np.float32(rounded) * np.float32(rounded)
    if not math.isfinite(float(squared)):
        # Keras computes 1/2 delta^2 for every sample: beyond sqrt(max) it is infinite
        raise InputError("--huber-delta is too large: delta squared overflows float32", delta)
    if rounded <= 0:
        raise InputError(f"--huber-delta is 0 in {dtype}", delta)
    return rounded

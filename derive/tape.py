"""Everything that runs TensorFlow: the reference script's forward pass and its gradient.

TensorFlow is imported lazily (it costs seconds) and its C++ log lines are silenced
before the import. The ops are the reference script's own: ``W * x + b``,
``reduce_mean(square(pred - y))``, ``GradientTape.gradient(loss, [W, b])``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

from .models import get_loss, get_model
from .problem import Problem


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: TensorFlow's C++ code logs there at import
    time, before TF_CPP_MIN_LOG_LEVEL or absl logging settings take effect."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@cache
def tensorflow() -> ModuleType:
    """Import TensorFlow once, quietly."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


@dataclass(frozen=True)
class TapeResult:
    """What the tape computed at one set of parameter values."""

    loss: float
    gradients: Mapping[str, float]
    tensorflow_version: str


def _variables(problem: Problem, values: Mapping[str, float]) -> dict[str, Any]:
    tf = tensorflow()
    return {
        name: tf.Variable(np.asarray(value, dtype=problem.dtype), name=name)
        for name, value in values.items()
    }


def gradient_at(problem: Problem, values: Mapping[str, float] | None = None) -> TapeResult:
    """Run ``tape.gradient(loss, parameters)`` once, as the reference script does."""
    tf = tensorflow()
    model = get_model(problem.model)
    loss_definition = get_loss(problem.loss)
    variables = _variables(problem, values or problem.initial.values)
    x = tf.constant(np.asarray(problem.x, dtype=problem.dtype))
    y = tf.constant(np.asarray(problem.y, dtype=problem.dtype))
    with tf.GradientTape() as tape:
        prediction = model.tf_prediction(variables, x)
        loss = loss_definition.tf_loss(prediction, y)
    gradients = tape.gradient(loss, list(variables.values()))
    return TapeResult(
        loss=float(loss.numpy()),
        gradients={
            name: float(gradient.numpy())
            for name, gradient in zip(variables, gradients, strict=False)
        },
        tensorflow_version=tf.__version__,
    )

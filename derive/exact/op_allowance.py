"""The measured error of TensorFlow's float32 elementwise ops, and a check on the
very values a tape computed.

exp, log, log1p, sigmoid and softplus are not correctly rounded in TensorFlow's CPU
kernels: ``scripts/measure_op_errors.py`` ran each over every float32 input against
its float64 form (within 1e-8 float32 ULP of the exact value) and shipped the largest
error as ``derive/data/op_errors.json``. A bound built on that table holds for this
build's kernels; :func:`check_outputs` measures the error again on the inputs and
outputs a tape recorded, so that a machine whose kernels round worse is found, not
assumed away.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

# Each op in float64, in a form free of cancellation (sigmoid as e^x / (1 + e^x) for
# x < 0, where 1 - something would lose the digits).
REFERENCES: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "log": np.log,
    "log1p": np.log1p,
    "sigmoid": lambda x: np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x))),
    "softplus": lambda x: np.logaddexp(0.0, x),
    # the Log1p gradient's 1 / (1 + x): a division in float64 is correctly rounded
    "reciprocal": np.reciprocal,
}
FLOAT32_SMALLEST = 2.0**-149
FLOAT32_SMALLEST_NORMAL = 2.0**-126
FLOAT32_OVERFLOW = (2 - 2.0**-24) * 2.0**127  # from here on a value rounds to infinity


def ulp32(values: np.ndarray) -> np.ndarray:
    """Spacing of float32 numbers at |values| (float64 array in, float64 out)."""
    magnitude = np.abs(values)
    _, exponent = np.frexp(np.maximum(magnitude, FLOAT32_SMALLEST))
    return np.maximum(np.ldexp(1.0, exponent - 24), FLOAT32_SMALLEST)


@cache
def table() -> dict[str, Any]:
    """The shipped table: {"ops": {name: {"max_ulps": ..., ...}}, ...}."""
    text = (resources.files("derive") / "data" / "op_errors.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class OutputCheck:
    """One op's outputs on a tape against its float64 form and the table's allowance."""

    op: str
    allowed_ulps: float  # the table's largest error, plus the reference's own margin
    seen_ulps: float  # the largest error among these outputs (0 when none was measured)
    at_input: float  # the input of that error (nan when none)
    measured: int  # outputs measured (finite, normal, within the range)

    @property
    def within(self) -> bool:
        return self.seen_ulps <= self.allowed_ulps


def check_outputs(
    op: str, inputs: np.ndarray, outputs: np.ndarray, dtype: str = "float32"
) -> OutputCheck:
    """The `outputs` a tape gave for `inputs` against the op's exact value: in float32
    its float64 form (as the sweep), in float64 its value in ball arithmetic.

    As in the measurement, an output whose exact value is NaN, subnormal (the CPU kernels
    flush those to zero: the flush allowance covers them) or beyond the dtype's range
    is not measured."""
    if op not in REFERENCES:
        raise ValueError(f"no measured error for op {op!r}; known: {', '.join(REFERENCES)}")
    if dtype == "float64":
        return _check_float64(op, inputs, outputs)
    x = np.asarray(inputs, dtype=np.float32).astype(np.float64).ravel()
    tape = np.asarray(outputs, dtype=np.float32).astype(np.float64).ravel()
    with np.errstate(all="ignore"):
        exact = REFERENCES[op](x)
    keep = (
        np.isfinite(exact)
        & (np.abs(exact) >= FLOAT32_SMALLEST_NORMAL)
        & (np.abs(exact) < FLOAT32_OVERFLOW)
        & np.isfinite(tape)
    )
    row = table()
    allowed = float(row["ops"][op]["max_ulps"]) + float(row["reference_margin_ulps"])
    if not keep.any():
        return OutputCheck(op, allowed, 0.0, float("nan"), 0)
    errors = np.abs(tape[keep] - exact[keep]) / ulp32(exact[keep])
    worst = int(np.argmax(errors))
    return OutputCheck(op, allowed, float(errors[worst]), float(x[keep][worst]), int(keep.sum()))


# Each op in ball arithmetic (python-flint's arb): the float64 reference
BALL_FORMS: Mapping[str, Callable[[Any], Any]] = {
    "exp": lambda v: v.exp(),
    "log": lambda v: v.log(),
    "log1p": lambda v: v.log1p(),
    "sigmoid": lambda v: 1 / (1 + (-v).exp()),
    "softplus": lambda v: v.exp().log1p(),
    "reciprocal": lambda v: 1 / v,
}
FLOAT64_SMALLEST_NORMAL = 2.0**-1022


def float64_errors(op: str, inputs: np.ndarray, outputs: np.ndarray) -> tuple[float, float, int]:
    """(largest error in float64 ULPs, its input, outputs measured) of float64 `outputs`
    against the op in ball arithmetic at 160 bits (each error exact to far below an ULP).
    Non-finite values, inputs outside the op's domain and exact results outside float64's
    normal range are not measured."""
    from flint import arb, ctx

    form = BALL_FORMS[op]
    worst, at, measured = 0.0, float("nan"), 0
    previous = ctx.prec
    ctx.prec = 160
    try:
        pairs = zip(
            np.asarray(inputs, np.float64).ravel().tolist(),
            np.asarray(outputs, np.float64).ravel().tolist(),
            strict=True,
        )
        for value, result in pairs:
            if not (np.isfinite(value) and np.isfinite(result)):
                continue
            if (op == "log" and value <= 0) or (op == "log1p" and value <= -1):
                continue
            exact = form(arb(value))
            size = abs(float(exact.mid()))
            if not FLOAT64_SMALLEST_NORMAL <= size < 2.0**1023:
                continue
            spacing = 2.0 ** (np.frexp(size)[1] - 53)
            error = abs(float((arb(result) - exact).mid())) / spacing
            measured += 1
            if error > worst:
                worst, at = error, value
    finally:
        ctx.prec = previous
    return worst, at, measured


def _check_float64(op: str, inputs: np.ndarray, outputs: np.ndarray) -> OutputCheck:
    """float64 outputs against the float64 sample's allowance (the table's "float64")."""
    allowed = float(table()["float64"]["ops"][op]["max_ulps"])
    return OutputCheck(op, allowed, *float64_errors(op, inputs, outputs))

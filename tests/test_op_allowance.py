"""The run-time check of an op's outputs against the measured table
(derive.exact.op_allowance): correctly rounded outputs are within, outputs off by more
than the table allows are found, and what the sweep leaves out is left out here too."""

from __future__ import annotations

import numpy as np
import pytest

from derive.exact.op_allowance import REFERENCES, check_outputs, table, ulp32

OPS = tuple(REFERENCES)


def _tensorflow_op(op: str):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    return getattr(tf.math, op)  # exp, log, log1p, sigmoid, softplus: all in tf.math


def _inputs() -> np.ndarray:
    generator = np.random.default_rng(5)
    return generator.normal(0, 4, 4096).astype(np.float32)


@pytest.mark.parametrize("op", OPS)
def test_correctly_rounded_outputs_are_within_the_table(op: str) -> None:
    x = _inputs()
    if op in ("log",):
        x = np.abs(x)
    if op == "log1p":
        x = np.maximum(x, np.float32(-0.99))
    with np.errstate(all="ignore"):
        rounded = REFERENCES[op](x.astype(np.float64)).astype(np.float32)
    check = check_outputs(op, x, rounded)
    assert check.measured > 1000
    assert check.seen_ulps <= 0.5 + 1e-9  # rounding to nearest, nothing more
    assert check.within
    assert check.allowed_ulps == pytest.approx(table()["ops"][op]["max_ulps"], abs=1e-7)


@pytest.mark.parametrize("op", OPS)
def test_outputs_off_by_more_than_the_table_are_found(op: str) -> None:
    x = np.abs(_inputs()) + np.float32(0.5)
    with np.errstate(all="ignore"):
        exact = REFERENCES[op](x.astype(np.float64))
    allowed = table()["ops"][op]["max_ulps"]
    # one output pushed a whole ULP beyond the allowance
    off = exact.copy()
    off[17] += (np.ceil(allowed) + 1) * ulp32(exact[17:18])[0]
    check = check_outputs(op, x, off.astype(np.float32))
    assert not check.within
    assert check.at_input == float(x[17])
    assert check.seen_ulps > allowed


def test_flushed_and_overflowing_results_are_not_measured() -> None:
    x = np.array([-120.0, 100.0, 1.0], dtype=np.float32)  # exp: subnormal, beyond, fine
    outputs = np.array([0.0, np.inf, np.e], dtype=np.float32)
    check = check_outputs("exp", x, outputs)
    assert check.measured == 1 and check.within


def test_an_unmeasured_op_is_refused() -> None:
    with pytest.raises(ValueError, match="no measured error for op 'tanh'"):
        check_outputs("tanh", np.ones(2), np.ones(2))


@pytest.mark.tensorflow
@pytest.mark.parametrize("op", OPS)
def test_this_machines_tape_outputs_pass_the_check(op: str) -> None:
    function = _tensorflow_op(op)
    x = _inputs()
    if op == "log":
        x = np.abs(x)
    if op == "log1p":
        x = np.maximum(x, np.float32(-0.99))
    check = check_outputs(op, x, function(x).numpy())
    assert check.measured > 1000 and check.within, check


def test_the_table_has_a_float64_sample_for_every_op() -> None:
    sample = table()["float64"]
    assert "sample" in sample["inputs"] and "arb" in sample["reference"]
    for op in OPS:
        row = sample["ops"][op]
        assert 0.5 <= row["max_ulps"] < 100 and row["inputs_measured"] > 50_000, op


@pytest.mark.parametrize("op", ("exp", "log1p", "sigmoid"))
def test_float64_outputs_are_checked_in_ball_arithmetic(op: str) -> None:
    from flint import arb, ctx

    x = np.abs(_inputs()[:300].astype(np.float64)) + 0.25
    forms = {"exp": arb.exp, "log1p": arb.log1p, "sigmoid": lambda v: 1 / (1 + (-v).exp())}
    ctx.prec = 160
    rounded = np.array([float(forms[op](arb(float(v))).mid()) for v in x])
    ctx.prec = 53
    check = check_outputs(op, x, rounded, dtype="float64")
    assert check.measured == 300 and check.seen_ulps <= 0.5 + 1e-9 and check.within
    off = rounded.copy()
    off[7] = rounded[7] + 20 * np.spacing(rounded[7])  # 20 ULPs: beyond any measured kernel
    wrong = check_outputs(op, x, off, dtype="float64")
    assert not wrong.within and wrong.at_input == float(x[7])


@pytest.mark.tensorflow
@pytest.mark.parametrize("op", OPS)
def test_this_machines_float64_kernels_pass_the_check(op: str) -> None:
    """The sample's worst input gives the recorded error again, and a fixed set of
    other inputs stays within it (the same inputs every run: no flaky sample)."""
    function = _tensorflow_op(op)
    row = table()["float64"]["ops"][op]
    x = np.concatenate([[row["at_input"]], np.random.default_rng(9).normal(0, 30, 2000)])
    if op == "log":
        x = np.abs(x)
    if op == "log1p":
        x = np.maximum(x, -0.99)
    check = check_outputs(op, x, function(x).numpy(), dtype="float64")
    assert check.within, check
    assert check.seen_ulps >= row["max_ulps"] - 1e-9  # the worst input, reproduced

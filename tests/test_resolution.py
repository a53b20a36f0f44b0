"""The check stays sharp at any n: k is the depth of the tape's sum plus the exact
roundings of one term, so a million samples still resolve relative errors of 1e-4;
a correct tape never fails, whatever the mode, dtype or data; wrong derivatives do."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derive.exact.roundings import tape_roundings, term_roundings
from derive.models.registry import get_loss, get_model
from derive.problem.problem import Dataset, Training, make_problem
from derive.report.build import explain, prepare
from derive.symbolic.derivation import WRONG_DERIVATIVES
from derive.tape.order import Order
from derive.tape.summation import reduction_depth

LINEAR = get_model("linear"), get_loss("mse")  # the counts below are the line's
KNOWN = Order("eager", threads=2, tensorflow_version="2.21.0", machine="x86_64", confirmed=True)


def _ordinary(n: int, seed: int = 0) -> Dataset:
    """x uniform on [0, 10], y = 0.3 x + 0.5 + small noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    y = 0.3 * x + 0.5 + rng.normal(0, 0.01, n)
    return Dataset("ordinary", tuple(x.tolist()), tuple(y.tolist()), "test")


def _problem(dataset: Dataset, dtype: str = "float32", mode: str = "eager", **init: float):
    return make_problem(
        dataset,
        dtype=dtype,
        init=init or {"W": 0.5, "b": 0.25},
        training=Training(steps=0),
        mode=mode,
    )


# --- The counts -----------------------------------------------------------------------


def test_the_roundings_of_one_term_are_counted_op_by_op():
    # r = fl(fl(fl(W x) + b) - y): 3. L: r r (3 + 3 + 1) and the division by n (1).
    # Mean's gradient 1/n (1), Square's g * 2r (1 + 3 + 1): dL/db 5, dL/dW one more.
    assert term_roundings(100, "float32", "eager", *LINEAR) == {"L": 8, "W": 6, "b": 5}
    assert term_roundings(100, "float64", "eager", *LINEAR) == {"L": 8, "W": 6, "b": 5}
    # Beyond 2^24, float32 rounds n itself: the division costs two.
    assert term_roundings(2**24 + 1, "float32", "eager", *LINEAR) == {"L": 9, "W": 7, "b": 6}
    assert term_roundings(2**24 + 1, "float64", "eager", *LINEAR) == {"L": 8, "W": 6, "b": 5}
    # A power of two divides exactly.
    assert term_roundings(2**10, "float32", "eager", *LINEAR)["L"] == 7
    # XLA may multiply by a rounded 1/n instead of dividing: one more for the loss.
    assert term_roundings(100, "float32", "xla", *LINEAR) == {"L": 9, "W": 6, "b": 5}


def test_k_is_the_depth_plus_the_terms():
    for n in (1, 2, 100, 10**4, 10**6, 4 * 10**6):
        depth = max(reduction_depth(n, t, "float32") for t in (1, 2))
        terms = term_roundings(n, "float32", "eager", *LINEAR)
        assert tape_roundings(n, "float32", KNOWN, *LINEAR) == {
            k: depth + v for k, v in terms.items()
        }
        # The order-free form: one long chain of n - 1 additions.
        assert tape_roundings(n, "float32", None, *LINEAR) == {
            k: n - 1 + v for k, v in terms.items()
        }
    assert tape_roundings(10**6, "float32", KNOWN, *LINEAR) == {"L": 265, "W": 263, "b": 262}


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (KNOWN, "cpu-order"),
        (Order("function", 2, "2.21.0", "x86_64", True), "cpu-order"),
        (Order("xla", 2, "2.21.0", "x86_64"), "xla"),
        (Order("eager", 2, "2.21.0", "aarch64"), "platform"),
        (Order("eager", 2, "2.20.0", "x86_64"), "version"),
        (Order("eager", 2, "2.21.0", "x86_64", confirmed=False), "mismatch"),
        (Order(), "unknown"),
    ],
)
def test_the_order_free_depth_where_the_order_is_not_known(order, reason):
    assert order.reason == reason
    n = 10**6
    assert order.depth(n, "float32") == (257 if reason == "cpu-order" else n - 1)
    # The node-by-node replay runs TensorFlow's kernels eagerly, also under XLA.
    assert order.depth(n, "float32", kernels=True) == (
        257 if reason in ("cpu-order", "xla") else n - 1
    )


def test_more_threads_take_the_largest_depth():
    many = Order("eager", 64, "2.21.0", "x86_64")
    assert many.depth(10**6, "float32") == max(
        reduction_depth(10**6, t, "float32") for t in range(1, 65)
    )
    assert many.depth(10**6, "float32") >= KNOWN.depth(10**6, "float32")


# --- The goal: a million ordinary samples -----------------------------------------------


@pytest.fixture(scope="module")
def million():
    problem = _problem(_ordinary(10**6))
    right = prepare(problem)
    wrong = {kind: prepare(problem, kind) for kind in sorted(WRONG_DERIVATIVES)}
    return right, wrong


def test_a_million_samples_resolve_one_part_in_ten_thousand(million):
    right, _ = million
    for (key, *_), bound in zip(right.quantities, right.bounds_for(KNOWN), strict=True):
        if key != "L":
            assert bound.value <= 1e-4 * abs(float(right.references[key])), key
    # The order-free bound could not tell a factor 2 from a correct gradient here.
    free = right.bounds_for(None)
    assert all(
        b.value > 0.3 * abs(float(right.references[k]))
        for (k, *_), b in zip(right.quantities[1:], free[1:], strict=True)
    )


def test_every_wrong_derivative_is_beyond_both_bounds_at_a_million(million):
    right, wrong = million
    bounds = dict(zip((q[0] for q in right.quantities), right.bounds_for(KNOWN), strict=True))
    for kind, ground in wrong.items():
        for key in ("W", "b"):
            gap = abs(ground.references[key] - right.references[key])
            # The tape is within bounds[key] of the truth, so it cannot be within the
            # same tolerance of the wrong value.
            assert gap > 2 * bounds[key].value, (kind, key)


@pytest.mark.tensorflow
def test_a_million_samples_on_the_tape():
    problem = _problem(_ordinary(10**6))
    report = explain(problem, backward=False)
    assert report.ok and report.rounding.known and report.rounding.depth == 257
    for check in report.checks[1:]:
        assert check.tolerance <= 1e-4 * abs(check.reference)
    for kind in sorted(WRONG_DERIVATIVES):
        wrong = explain(problem, kind, backward=False)
        assert not any(check.ok for check in wrong.checks[1:]), kind


# --- Every mode on the real tape ----------------------------------------------------------


@pytest.mark.tensorflow
@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_each_mode_on_the_tape(mode):
    problem = make_problem(
        _ordinary(5000, seed=3),
        init={"W": 0.5, "b": 0.25},
        training=Training(steps=5),
        mode=mode,
    )
    report = explain(problem)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.training is not None and report.training.ok
    rounding = report.rounding
    assert rounding.order.mode == mode and report.problem.mode == mode
    assert report.to_dict()["problem"]["mode"] == mode
    if mode == "xla":
        assert rounding.reason == "xla" and rounding.depth == problem.n - 1
        assert rounding.roundings["L"] == problem.n - 1 + 9
    else:
        assert rounding.reason == "cpu-order" and rounding.order.confirmed
        assert rounding.depth == reduction_depth(problem.n, rounding.order.threads, "float32")
        assert report.training.gradient_bound.roundings == rounding.roundings["W"]
    for kind in sorted(WRONG_DERIVATIVES):
        assert not explain(problem, kind, backward=False).ok, kind


# --- A correct tape never fails -------------------------------------------------------------


def _family(kind: str, n: int, seed: int) -> tuple[Dataset, dict[str, float]]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    noise = rng.normal(0, 1, n)
    if kind == "tiny":  # products near and below the smallest normal number
        scale = 1e-19
        x, y, init = x * scale, noise * scale, {"W": 0.7, "b": 3 * scale}
    elif kind == "flush":  # squares of residuals below float32's smallest normal number
        x, y, init = x * 1e-20, noise * 1e-20, {"W": 1e-19, "b": 1e-21}
    elif kind == "huge":  # squares near the top of float32's range, summed
        scale = 1e14
        x, y, init = x * scale, noise * scale, {"W": 0.3, "b": 2 * scale}
    elif kind == "cancelling":  # y on the line: residuals far smaller than their parts
        x = x * 1e3
        y = 0.3 * x + 0.5 + noise * 1e-6
        init = {"W": 0.3, "b": 0.5}
    else:  # ordinary
        x = (x + 1) * 5
        y = 0.3 * x + 0.5 + noise * 0.01
        init = {"W": 0.5, "b": 0.25}
    return Dataset(kind, tuple(x.tolist()), tuple(y.tolist()), "test"), init


cases = st.fixed_dictionaries(
    {
        "family": st.sampled_from(["ordinary", "tiny", "flush", "huge", "cancelling"]),
        "n": st.one_of(st.integers(1, 40), st.integers(41, 10**4)),
        "seed": st.integers(0, 2**16),
        "dtype": st.sampled_from(["float32", "float64"]),
        "mode": st.sampled_from(["eager", "function", "xla"]),
    }
)


@pytest.mark.tensorflow
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=cases)
def test_a_correct_tape_never_fails(case):
    dataset, init = _family(case["family"], case["n"], case["seed"])
    problem = _problem(dataset, case["dtype"], case["mode"], **init)
    report = explain(problem, backward=case["n"] <= 2000)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert report.rounding.known == (case["mode"] != "xla")

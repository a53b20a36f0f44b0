"""Against the real tape: the learner's numbers, other data sets, and wrong derivatives."""

from __future__ import annotations

import json
from fractions import Fraction
from importlib import resources

import jsonschema
import numpy as np
import pytest

from derive.cli.main import main
from derive.problem.problem import BUILTIN_DATASETS
from derive.report.build import build_report
from tests.conftest import SINGLE_INIT, SINGLE_INIT_FLAG

pytestmark = pytest.mark.tensorflow


def independent_tape(x, y, w, b):
    """The reference script's computation, written out here on its own."""
    import tensorflow as tf

    weight, bias = tf.Variable(w), tf.Variable(b)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(weight * np.asarray(x) + bias - np.asarray(y)))
    d_w, d_b = tape.gradient(loss, [weight, bias])
    return float(loss), float(d_w), float(d_b)


def exact(x, y, w, b):
    """Exact loss and gradients at the float32 values, by hand, in rationals."""
    f = [Fraction(float(np.float32(v))) for v in x]
    g = [Fraction(float(np.float32(v))) for v in y]
    w, b = Fraction(float(np.float32(w))), Fraction(float(np.float32(b)))
    r = [w * xi + b - yi for xi, yi in zip(f, g, strict=True)]
    n = len(r)
    return (
        sum(ri * ri for ri in r) / n,
        2 * sum(ri * xi for ri, xi in zip(r, f, strict=True)) / n,
        2 * sum(r) / n,
    )


def test_the_learners_numbers(tmp_path, capsys):
    code = main(
        [
            "report",
            "--data",
            "single",
            *SINGLE_INIT_FLAG,
            "--format",
            "json,html,pdf",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    document = json.loads((tmp_path / "single.json").read_text())
    schema = json.loads((resources.files("derive") / "schema" / "report.schema.json").read_text())
    jsonschema.validate(document, schema)  # with the backward pass and the training
    assert document["training"]["steps_checked"] == 1000 and document["backward"]
    gradients = document["initial"]["gradients"]
    for name, value in (("W", -1.388673), ("b", -0.420810)):
        assert gradients[name]["reference"] == pytest.approx(value, abs=5e-7)
        assert gradients[name]["tape"] == pytest.approx(value, abs=5e-7)
        assert gradients[name]["ok"]
    assert document["ok"] is True
    assert (tmp_path / "single.pdf").read_bytes().startswith(b"%PDF")
    assert "PASS" in (tmp_path / "single.html").read_text()


# One feature: the independent references below take x as one column (tests/test_features.py
# has several)
@pytest.mark.parametrize("data", sorted(d for d, s in BUILTIN_DATASETS.items() if s.k == 1))
@pytest.mark.parametrize("init", [SINGLE_INIT, {"W": -1.5, "b": 3.25}, {"W": 0.0, "b": 0.0}])
def test_reference_is_exact_and_tape_is_tensorflows(data, init):
    dataset = BUILTIN_DATASETS[data]
    report = build_report(data, init=init)
    want_exact = exact(dataset.x, dataset.y, init["W"], init["b"])
    want_tape = independent_tape(dataset.x, dataset.y, np.float32(init["W"]), np.float32(init["b"]))
    for check, reference, tape in zip(report.checks, want_exact, want_tape, strict=True):
        assert check.reference == pytest.approx(float(reference), rel=1e-6, abs=1e-12)
        assert check.tape == tape
        assert check.ok


def test_random_initial_values_are_reproducible_with_the_seed():
    first = build_report("seed", seed=1234)
    again = build_report("seed", seed=1234)
    assert first.problem.init == again.problem.init
    assert first.problem.seed == 1234 and first.problem.init_source == "random"
    assert all(0 <= value < 1 for value in first.problem.init.values())
    drawn = build_report("seed")
    assert drawn.problem.seed is not None
    assert build_report("seed", seed=drawn.problem.seed).problem.init == drawn.problem.init


def test_float64_tape():
    report = build_report("tf-examples", init=SINGLE_INIT, dtype="float64")
    assert report.ok
    assert all(check.ulps < 64 for check in report.checks)


@pytest.mark.parametrize("kind", ["drop-factor-2", "drop-mean", "x-for-y"])
def test_a_wrong_derivative_fails_with_exit_1(tmp_path, capsys, kind):
    code = main(
        [
            "report",
            "--wrong-derivative",
            kind,
            *SINGLE_INIT_FLAG,
            "--format",
            "html,json",
            "--out",
            str(tmp_path),
        ]
    )
    output = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in output and "SOME CHECKS FAILED" in output
    document = json.loads((tmp_path / "seed.json").read_text())
    assert document["ok"] is False
    assert "FAIL" in (tmp_path / "seed.html").read_text()


def test_same_inputs_give_the_same_bytes_in_two_processes(tmp_path):
    import subprocess
    import sys

    for folder in ("a", "b"):
        subprocess.run(
            [
                sys.executable, "-m", "derive", "report", "--seed", "5", "--quiet",
                "--format", "html,pdf,json", "--out", str(tmp_path / folder),
            ],
            check=True,
        )  # fmt: skip
    for name in ("seed.html", "seed.pdf", "seed.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

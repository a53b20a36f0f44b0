"""The measured error table of TensorFlow's float32 elementwise ops (scripts/
measure_op_errors.py): shipped whole, and true of the kernels on this machine."""

from __future__ import annotations

import importlib.util
import json
import math
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

OPS = ("exp", "log", "log1p", "sigmoid", "softplus", "reciprocal")
# reciprocal's result near the smallest normal number is flushed to zero: 2^23 ULPs there
FLUSHED_NEAR_LAMBDA = {"reciprocal"}


def _table() -> dict:
    return json.loads((resources.files("derive") / "data" / "op_errors.json").read_text())


def _script():
    path = Path(__file__).resolve().parent.parent / "scripts" / "measure_op_errors.py"
    spec = importlib.util.spec_from_file_location("measure_op_errors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_covers_every_op_over_every_float32_input():
    table = _table()
    assert table["dtype"] == "float32"
    assert table["inputs"] == "every float32 bit pattern (2^32)"
    assert set(table["ops"]) == set(OPS)
    for name, row in table["ops"].items():
        # No kernel beats correct rounding, whose worst case over 2^32 inputs is 1/2 ULP
        assert 0.5 <= row["max_ulps"] < (2**24 if name in FLUSHED_NEAR_LAMBDA else 1e3), name
        assert row["nan_mismatches"] == 0 and row["range_mismatches"] == 0, name
        # every input is measured or counted apart (NaN, beyond the range, flushed)
        assert 0 < row["inputs_measured"] < 2**32, name
        if name not in FLUSHED_NEAR_LAMBDA:
            assert row["tail_path_sample"]["max_ulps"] >= 0.5, name  # the scalar path, sampled


def test_the_logistic_bound_finds_its_ops_measured_on_their_domains():
    """exp on [-inf, 0], log1p on [0, 1], reciprocal on [1, 2]: swept, every input of
    the domain, and the scalar path sampled there."""
    from derive.exact.logistic_bound import DOMAINS

    table = _table()
    for name, (low, high) in DOMAINS.items():
        (domain,) = [
            d for d in table["ops"][name]["domains"] if (d["low"], d["high"]) == (low, high)
        ]
        assert 0.5 <= domain["max_ulps"] < 10, name
        assert low <= domain["at_input"] <= high, name
        assert domain["inputs_measured"] > 2**22, name
        assert domain["tail_path_sample"]["max_ulps"] >= 0.5 - 1e-3, name


def test_ulp32_is_the_float32_spacing():
    ulp32 = _script().ulp32
    values = np.array([1.0, 1.5, 2.0, 3.0e38, 2.0**-126, -0.75])
    expected = [2.0**-23, 2.0**-23, 2.0**-22, 2.0**104, 2.0**-149, 2.0**-24]
    assert ulp32(values).tolist() == expected


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", OPS)
def test_this_machines_kernels_stay_within_the_table(name):
    """At the recorded worst input and at 2^20 random normal inputs, the kernel's error
    is at most the table's: the table is this build's, or the test says otherwise."""
    script = _script()
    table = _table()
    row = table["ops"][name]
    generator = np.random.default_rng(11)
    bits = generator.integers(0, 2**32, size=2**20, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x) & ((x == 0) | (np.abs(x) >= 2.0**-126))]
    # First, in a full SIMD packet: the elements of an array's last, partial packet go
    # through the kernel's scalar path, with other roundings (the table is the packets')
    x = np.concatenate([[np.float32(row["at_input"])], x[: len(x) // 64 * 64 - 1]])
    tape = script.tensorflow_op(name)(x).astype(np.float64)
    with np.errstate(all="ignore"):
        exact = script.REFERENCES[name](x.astype(np.float64))
    keep = np.isfinite(exact) & (np.abs(exact) >= 2.0**-126) & (np.abs(exact) < 3.4e38)
    errors = np.abs(tape[keep] - exact[keep]) / script.ulp32(exact[keep])
    assert float(errors.max()) <= row["max_ulps"] + table["reference_margin_ulps"]
    assert keep[0] and math.isclose(float(errors[0]), row["max_ulps"], rel_tol=1e-6)


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", ["exp", "log1p", "reciprocal"])
def test_this_machines_kernels_stay_within_the_domains_allowance(name):
    """The logistic bound's allowances: at the domain's recorded worst input and at
    2^18 random inputs of the domain, within the domain's measured error."""
    from derive.exact.logistic_bound import DOMAINS

    script = _script()
    table = _table()
    low, high = DOMAINS[name]
    (domain,) = [d for d in table["ops"][name]["domains"] if (d["low"], d["high"]) == (low, high)]
    generator = np.random.default_rng(12)
    start, stop = script.domain_patterns(low, high)[0]
    bits = generator.integers(start, stop, size=2**18, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = np.concatenate([[np.float32(domain["at_input"])], x[: len(x) // 64 * 64 - 1]])
    tape = script.tensorflow_op(name)(x).astype(np.float64)
    exact = script.REFERENCES[name](x.astype(np.float64))
    keep = np.abs(exact) >= 2.0**-126
    errors = np.abs(tape[keep] - exact[keep]) / script.ulp32(exact[keep])
    assert float(errors.max()) <= domain["max_ulps"] + table["reference_margin_ulps"]
    assert keep[0] and math.isclose(float(errors[0]), domain["max_ulps"], rel_tol=1e-6)

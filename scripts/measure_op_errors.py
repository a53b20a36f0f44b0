"""Measure how far TensorFlow's float32 elementwise ops on this CPU are from the exact
results: every one of the 2^32 float32 inputs, op by op.

    python scripts/measure_op_errors.py [--ops exp,log,log1p,sigmoid,softplus]
                                        [--chunk-bits 24] [--out derive/data/op_errors.json]

exp, log, log1p, sigmoid and softplus are not correctly rounded in TensorFlow's CPU
kernels (Eigen's vectorised polynomial approximations), so a rounding-error bound
cannot assume half an ULP per op: each op's allowance is measured here, on this build.

The reference is the op in float64 (NumPy, which calls the C library): within a few
float64 ULPs of the exact value, 2^-29 float32 ULPs each, so the measured error in
float32 ULPs is the true one to within 1e-8 ULP (the file records that margin). The
error of an input is |tape - reference| / ulp32(reference), where ulp32(v) is the
spacing of float32 numbers at |v|. Inputs whose reference is beyond float32's range
must give infinity (exp from 88.73); NaN must give NaN; subnormal inputs and results
are flushed to zero by the CPU kernels (the bound's underflow term covers that): all
three are counted, not measured.

The kernels run on SIMD packets; the elements of an array's last, partial packet take
a scalar path with other roundings. The sweep's chunks are whole packets, so the table is
the packet path's; `--tail-sample N` adds the scalar path's largest error over N random
inputs, each run as a one-element tensor (a sample, not a sweep), to an existing table.

Prints one line per op with its largest error, the input where it occurs and the time;
writes the table as JSON with TensorFlow's version and the CPU's name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from derive.exact.op_allowance import (  # the float64 forms, shared with the run-time check
    FLOAT32_OVERFLOW,
    FLOAT32_SMALLEST_NORMAL,
    FLOAT64_SMALLEST_NORMAL,
    REFERENCES,
    float64_errors,
    ulp32,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FLOAT64_REFERENCE_MARGIN_ULPS = 1e-8  # float64 reference error in float32 ULPs, at most


def tensorflow_op(name: str) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    ops = {
        "exp": tf.math.exp,
        "log": tf.math.log,
        "log1p": tf.math.log1p,
        "sigmoid": tf.math.sigmoid,
        "softplus": tf.math.softplus,
        "reciprocal": tf.math.reciprocal,
    }
    op = ops[name]
    return lambda x: op(tf.constant(x)).numpy()


def _pattern(value: float) -> int:
    return int(np.array([abs(value)], dtype=np.float32).view(np.uint32)[0])


def domain_patterns(low: float, high: float) -> list[tuple[int, int]]:
    """The float32 bit patterns of the inputs in [low, high], as half-open ranges: the
    patterns of nonnegative floats grow with the value, those of negative floats (sign
    bit set) with its magnitude."""
    ranges = []
    if high >= 0:
        ranges.append((_pattern(max(low, 0.0)), _pattern(high) + 1))
    if low < 0:
        sign = 1 << 31
        ranges.append((sign + _pattern(min(high, 0.0)), sign + _pattern(low) + 1))
    return ranges


def measure(
    name: str, chunk_bits: int, stride: int = 1, domain: tuple[float, float] | None = None
) -> dict[str, object]:
    """The op over every float32 input (`stride` > 1: every stride-th chunk only), or
    over every input in `domain` (inclusive)."""
    op, reference = tensorflow_op(name), REFERENCES[name]
    worst, worst_input, measured, nan_mismatch, range_mismatch, flushed = 0.0, 0.0, 0, 0, 0, 0
    started = time.perf_counter()
    size = 1 << chunk_bits
    ranges = [(0, 1 << 32)] if domain is None else domain_patterns(*domain)
    chunks = [
        (start, min(start + size, stop))
        for first, stop in ranges
        for start in range(first, stop, size * stride)
    ]
    for start, stop in chunks:
        bits = np.arange(start, stop, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        tape = op(x).astype(np.float64)
        with np.errstate(all="ignore"):
            exact = reference(x.astype(np.float64))
        # TensorFlow's CPU kernels flush subnormal inputs and results to zero: that loss
        # is the bound's underflow term (lambda S), not the op's error, so those inputs
        # are counted apart (log of a negative subnormal is then -inf, not NaN). The
        # rest are measured.
        subnormal_in = (x != 0) & (np.abs(x) < FLOAT32_SMALLEST_NORMAL)
        subnormal_out = (exact != 0) & (np.abs(exact) < FLOAT32_SMALLEST_NORMAL)
        nan_exact = np.isnan(exact)
        nan_mismatch += int(np.count_nonzero((nan_exact != np.isnan(tape)) & ~subnormal_in))
        beyond = ~nan_exact & (np.abs(exact) >= FLOAT32_OVERFLOW)
        range_mismatch += int(np.count_nonzero(beyond & (np.abs(tape) != np.inf)))
        flushed += int(np.count_nonzero((subnormal_in | subnormal_out) & ~nan_exact))
        usable = ~nan_exact & ~beyond & np.isfinite(x) & ~subnormal_in & ~subnormal_out
        with np.errstate(all="ignore"):
            errors = np.where(usable, np.abs(tape - exact) / ulp32(exact), 0.0)
        errors[usable & ~np.isfinite(tape)] = np.inf
        measured += int(np.count_nonzero(usable))
        index = int(np.argmax(errors))
        if errors[index] > worst:
            worst, worst_input = float(errors[index]), float(x[index])
    return {
        "op": name,
        "max_ulps": worst,
        "at_input": worst_input,
        "inputs_measured": measured,
        "nan_mismatches": nan_mismatch,
        "range_mismatches": range_mismatch,
        "subnormal_inputs_or_results": flushed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def tail_sample(
    name: str, count: int, domain: tuple[float, float] | None = None
) -> dict[str, object]:
    """The scalar path: `count` random float32 inputs (random bit patterns, within
    `domain` if given), one per tensor."""
    op, reference = tensorflow_op(name), REFERENCES[name]
    generator = np.random.default_rng(5)
    ranges = [(0, 1 << 32)] if domain is None else domain_patterns(*domain)
    bits = np.concatenate(
        [generator.integers(start, stop, size=4 * count, dtype=np.uint64) for start, stop in ranges]
    )
    bits = generator.permutation(bits).astype(np.uint32)
    x = bits.view(np.float32)
    with np.errstate(all="ignore"):
        exact = reference(x.astype(np.float64))
    usable = (
        np.isfinite(x)
        & (np.abs(x) >= FLOAT32_SMALLEST_NORMAL)
        & np.isfinite(exact)
        & (np.abs(exact) >= FLOAT32_SMALLEST_NORMAL)
        & (np.abs(exact) < FLOAT32_OVERFLOW)
    )
    x, exact = x[usable][:count], exact[usable][:count]
    tape = np.array([op(x[i : i + 1])[0] for i in range(len(x))], dtype=np.float64)
    errors = np.abs(tape - exact) / ulp32(exact)
    index = int(np.argmax(errors))
    return {"inputs": len(x), "max_ulps": float(errors[index]), "at_input": float(x[index])}


def float64_sample(name: str, count: int) -> dict[str, object]:
    """The op in float64 at `count` inputs: half normal with standard deviation 30 (the
    range where the results are neither 0 nor infinite, and more), half random float64
    bit patterns (the extremes). 2^64 inputs cannot be swept; this is a sample. The
    reference is the op in ball arithmetic (python-flint's arb at 160 bits), so each
    error is exact to far below a float64 ULP."""
    generator = np.random.default_rng(64)
    normal = generator.normal(0, 30, count // 2)
    bits = generator.integers(0, 2**63, size=count - count // 2, dtype=np.uint64)
    bits |= generator.integers(0, 2, size=bits.size, dtype=np.uint64) << np.uint64(63)
    x = np.concatenate([normal, bits.view(np.float64)])
    with np.errstate(all="ignore"):
        approx = REFERENCES[name](x)
    usable = (
        np.isfinite(x)
        & ((x == 0) | (np.abs(x) >= FLOAT64_SMALLEST_NORMAL))
        & np.isfinite(approx)
        & (np.abs(approx) >= 2 * FLOAT64_SMALLEST_NORMAL)  # room for the float64 form's error
        & (np.abs(approx) < 2.0**1023)
    )
    x = x[usable]
    tape = tensorflow_op(name)(x)
    started = time.perf_counter()
    worst, worst_input, measured = float64_errors(name, x, tape)
    return {
        "max_ulps": worst,
        "at_input": worst_input,
        "inputs_measured": measured,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", default=",".join(REFERENCES))
    parser.add_argument("--chunk-bits", type=int, default=24)
    parser.add_argument(
        "--stride", type=int, default=1, help="every stride-th chunk only: a quick sample"
    )
    parser.add_argument("--out", default="derive/data/op_errors.json")
    parser.add_argument(
        "--domain",
        help="LOW,HIGH: sweep only the inputs in [LOW, HIGH] and add the result to each op's "
        "row of --out as the allowance on that domain (a bound that feeds the op only such "
        "inputs may use it)",
    )
    parser.add_argument(
        "--float64-sample",
        type=int,
        default=0,
        help="add the float64 kernels' largest error over N sampled inputs to the table in --out",
    )
    parser.add_argument(
        "--tail-sample",
        type=int,
        default=0,
        help="add the scalar path's largest error over N random inputs to the table in --out",
    )
    args = parser.parse_args()
    names = [name.strip() for name in args.ops.split(",") if name.strip()]
    unknown = [name for name in names if name not in REFERENCES]
    if unknown:
        raise SystemExit(
            f"error: --ops: unknown op {unknown[0]!r}; choose from {', '.join(REFERENCES)}"
        )
    if args.float64_sample:
        path = Path(args.out)
        table = json.loads(path.read_text(encoding="utf-8"))
        rows = {name: float64_sample(name, args.float64_sample) for name in names}
        for name, found in rows.items():
            print(
                f"{name:>8} (float64): at most {found['max_ulps']:.4g} ULP over "
                f"{found['inputs_measured']} sampled inputs (at x = {found['at_input']!r})",
                flush=True,
            )
        table["float64"] = {
            "inputs": f"a sample of {args.float64_sample}: half normal (sd 30), half random "
            "bit patterns; results beyond the range, subnormal or NaN left out",
            "reference": "the op in ball arithmetic (python-flint arb, 160 bits)",
            # the ops not measured this time keep their rows
            "ops": {**table.get("float64", {}).get("ops", {}), **rows},
        }
        path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
        return
    if args.tail_sample:
        path = Path(args.out)
        table = json.loads(path.read_text(encoding="utf-8"))
        for name in names:
            found = tail_sample(name, args.tail_sample)
            table["ops"][name]["tail_path_sample"] = found
            print(
                f"{name:>8}: scalar path at most {found['max_ulps']:.4g} ULP over "
                f"{found['inputs']} inputs (at x = {found['at_input']!r})",
                flush=True,
            )
        path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
        return
    if args.domain:
        low, high = (float(v) for v in args.domain.split(","))
        path = Path(args.out)
        table = json.loads(path.read_text(encoding="utf-8"))
        for name in names:
            found = measure(name, args.chunk_bits, domain=(low, high))
            found.pop("op")
            found["tail_path_sample"] = tail_sample(name, 20000, (low, high))
            kept = [
                d
                for d in table["ops"][name].get("domains", [])
                if (d["low"], d["high"]) != (low, high)
            ]
            table["ops"][name]["domains"] = [*kept, {"low": low, "high": high, **found}]
            print(
                f"{name:>8} on [{low:g}, {high:g}]: at most {found['max_ulps']:.4g} ULP "
                f"(at x = {found['at_input']!r}), {found['inputs_measured']} inputs",
                flush=True,
            )
        path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
        return
    import tensorflow as tf

    rows = []
    for name in names:
        row = measure(name, args.chunk_bits, args.stride)
        rows.append(row)
        print(
            f"{name:>8}: at most {row['max_ulps']:.4g} ULP (at x = {row['at_input']!r}), "
            f"{row['inputs_measured']} inputs, NaN mismatches {row['nan_mismatches']}, "
            f"range mismatches {row['range_mismatches']}, {row['seconds']} s",
            flush=True,
        )
    table = {
        "dtype": "float32",
        "inputs": "every float32 bit pattern (2^32)"
        if args.stride == 1
        else f"every {args.stride}th chunk of 2^{args.chunk_bits} bit patterns",
        "reference": "the op in float64 (NumPy)",
        "reference_margin_ulps": FLOAT64_REFERENCE_MARGIN_ULPS,
        "tensorflow": tf.__version__,
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "python": platform.python_version(),
        "ops": {row.pop("op"): row for row in rows},
    }
    path = Path(args.out)
    if path.exists():  # a sweep of some ops keeps the rows of the others measured here
        earlier = json.loads(path.read_text(encoding="utf-8"))
        same = all(earlier.get(key) == table[key] for key in ("dtype", "inputs", "tensorflow"))
        if same:
            table = {**earlier, "ops": {**earlier["ops"], **table["ops"]}}
    path.write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()

"""Hard data against the bound, on the real tape: a correct tape must never fail.

For families of data made to be hard for a rounding-error bound -- huge and tiny
magnitudes, values whose squares flush to zero, cancellation (residuals summing to about
0), alternating signs, sorted and reverse-sorted terms, n at powers of two and at the
lane, leaf and thread boundaries of TensorFlow's CPU reduction, up to a million samples,
float32 and float64, eager, tf.function and XLA -- it runs derive's own initial check
(:func:`derive.report.build.explain`, TensorFlow in this process, no training) and prints, per
family, the largest share of the bound any value used (`used`, |tape - exact| /
tolerance: at most 1 within the bound), the largest error in u*M, the verdicts, and every
value that failed, with the command that reruns it alone.

The family ``worst`` is the data of tests/worst_case_tape.py, built so that every
rounding on the sum's longest path loses nearly u: on the real tape its `used` is close
to 1 where TensorFlow adds in the order derive.tape.summation emulates.

    nice python bench/adversarial_bound.py [--budget 900] [--wall S] [--seed 0] [--families a,b]
                                           [--modes eager,function,xla]
                                           [--dtypes float32,float64] [--max-n 1000000]
    python bench/adversarial_bound.py --case FAMILY,N,DTYPE,MODE,SEED   # one case, verbose

Cases run in a fixed order (every family at every size, then again with new seeds) until
the budget of CPU seconds (or --wall seconds) is spent, or Ctrl-C or SIGTERM: the table
then covers the cases run. A failure is also printed on standard error when it happens.
The same --seed runs the same cases.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from derive.problem.problem import Dataset, Training, make_problem
from derive.report.build import explain

# Sizes at the seams of the reduction (derive/tape/summation.py): a packet of 8 float32 (4
# float64) lanes, four accumulators (32), a leaf of 8 * 1024 terms, two blocks from
# 108388 float32 terms on two threads (54194 float64), and powers of two beside them.
SIZES = (
    1, 2, 3, 7, 8, 9, 31, 32, 33, 100, 127, 128, 129, 1023, 1024, 1025, 4095, 4096, 4097,
    8191, 8192, 8193, 16385, 54193, 54194, 54195, 65536, 108387, 108388, 108389, 131072,
    262145, 1000000,
)  # fmt: skip
FAMILIES = (
    "ordinary", "huge", "tiny", "flush", "subnormal", "cancelling", "zero-sum",
    "alternating", "sorted", "reverse-sorted", "spread", "worst",
)  # fmt: skip


def family_data(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """x, y and the initial W and b of one case (float64 values, rounded by the tape)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    noise = rng.normal(0, 1, n)
    if kind == "huge":  # squares of residuals near float32's largest number, summed
        scale = 10.0 ** rng.uniform(12, 17)
        return x * scale, noise * scale, {"W": 0.3, "b": 2 * scale}
    if kind == "tiny":  # products near float32's smallest normal number
        scale = 10.0 ** rng.uniform(-20, -17)
        return x * scale, noise * scale, {"W": 0.7, "b": 3 * scale}
    if kind == "flush":  # squares below the smallest normal number: flushed to zero
        scale = 10.0 ** rng.uniform(-22, -19)
        return x * scale, noise * scale, {"W": 1e-19, "b": scale / 10}
    if kind == "subnormal":  # residuals themselves subnormal in float32
        scale = 10.0 ** rng.uniform(-44, -39)
        return x * scale, noise * scale, {"W": 0.5, "b": scale}
    if kind == "cancelling":  # y on the line: residuals far smaller than W x, b and y
        x = x * 10.0 ** rng.uniform(0, 6)
        w, b = 0.3, 0.5
        return x, w * x + b + noise * 1e-6 * np.abs(x).max(), {"W": w, "b": b}
    if kind == "zero-sum":  # residuals in +- pairs: the sum of residuals (dL/db) about 0
        x = np.abs(x) * 100
        w, b = 1.5, -0.25
        signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
        offsets = np.repeat(rng.uniform(0.5, 2, (n + 1) // 2), 2)[:n] * signs
        return x, w * x + b + offsets, {"W": w, "b": b}
    if kind == "alternating":  # terms of alternating sign and large magnitude
        x = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * (1 + np.abs(x)) * 1e3
        return x, -x + noise, {"W": 0.9, "b": 0.1}
    if kind in ("sorted", "reverse-sorted"):  # residuals growing along the sum (or shrinking)
        x = np.sort(np.abs(x) * 10.0 ** rng.uniform(0, 8, n))
        x = x if kind == "sorted" else x[::-1].copy()
        return x, np.zeros(n), {"W": 1.0, "b": 1e-3}
    if kind == "spread":  # magnitudes spread over 30 decades, random signs
        x = np.sign(x) * 10.0 ** rng.uniform(-15, 15, n)
        return x, noise * 10.0 ** rng.uniform(-15, 15, n), {"W": 0.7, "b": 0.2}
    x = (x + 1) * 5  # ordinary
    return x, 0.3 * x + 0.5 + noise * 0.01, {"W": 0.5, "b": 0.25}


@dataclass
class Tally:
    cases: int = 0
    values: int = 0
    worst_used: float = 0.0
    worst_where: str = ""
    worst_um: float = 0.0
    verdicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _worst_case(n: int, seed: int):  # type: ignore[no-untyped-def]
    """The data of tests/worst_case_tape.py (loss, dL/dW or dL/db by the seed), or None
    where it is not built (float32 only; the gradients' n just below a power of two)."""
    from tests.worst_case_tape import worst_case_data

    quantity = "LWb"[seed % 3]
    return worst_case_data(quantity, n, 2 if n >= 108388 else 1)


def run_case(kind: str, n: int, dtype: str, mode: str, seed: int, tally: Tally) -> None:
    label = f"{kind},{n},{dtype},{mode},{seed}"
    if kind == "worst":
        case = _worst_case(n, seed)
        dataset, init = case.dataset, case.init
    else:
        x, y, init = family_data(kind, n, seed)
        dataset = Dataset(kind, tuple(x.tolist()), tuple(y.tolist()), "bench")
    problem = make_problem(dataset, dtype=dtype, init=init, training=Training(steps=0), mode=mode)
    report = explain(problem, backward=False)
    tally.cases += 1
    for check in report.checks:
        tally.values += 1
        tally.verdicts[check.verdict] += 1
        if check.verdict == "fail":
            tally.failures.append(
                f"{label} {check.quantity}: tape {check.tape!r}, exact {check.reference!r}, "
                f"used {check.used:.4g}, k {check.bound.roundings}, order "
                f"{report.rounding.reason}"
            )
            print("FAIL", tally.failures[-1], file=sys.stderr, flush=True)
        if math.isfinite(check.used) and check.used > tally.worst_used:
            tally.worst_used = check.used
            tally.worst_where = f"{check.quantity} at {label} (k {check.bound.roundings})"
        if math.isfinite(check.error_um):
            tally.worst_um = max(tally.worst_um, check.error_um)


def cases(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    families = args.families.split(",")
    modes, dtypes = args.modes.split(","), args.dtypes.split(",")
    sizes = [n for n in SIZES if n <= args.max_n]
    worst_sizes = [3, 100, 4095, 16380, 32760, 131040]
    rounds = 0
    while True:
        for index, n in enumerate(sizes):
            for kind in families:
                if kind == "worst":
                    if index >= len(worst_sizes) or worst_sizes[index] > args.max_n:
                        continue
                    for mode in modes:
                        if "float32" in dtypes:
                            yield kind, worst_sizes[index], "float32", mode, args.seed + rounds
                    continue
                seed = args.seed + 1000 * rounds + index
                # Each case takes one dtype and mode in turn, so that every size meets each.
                dtype = dtypes[(index + rounds + len(kind)) % len(dtypes)]
                mode = modes[(index + 2 * rounds + len(kind)) % len(modes)]
                yield kind, n, dtype, mode, seed
        rounds += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=900, help="CPU seconds (default 900)")
    parser.add_argument("--wall", type=float, default=math.inf, help="wall seconds (no limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--modes", default="eager,function,xla")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--max-n", type=int, default=1_000_000)
    parser.add_argument("--case", help="FAMILY,N,DTYPE,MODE,SEED: run one case and show it")
    args = parser.parse_args()

    if args.case:
        kind, n, dtype, mode, seed = args.case.split(",")
        tally = Tally()
        run_case(kind, int(n), dtype, mode, int(seed), tally)
        print(f"used {tally.worst_used:.4g} ({tally.worst_where}), {dict(tally.verdicts)}")
        for line in tally.failures:
            print("FAIL", line)
        return 1 if tally.failures else 0

    # SIGTERM (and SIGHUP) end the run as Ctrl-C does: with the table of the cases run.
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.default_int_handler)
    tallies: dict[str, Tally] = defaultdict(Tally)
    start = time.process_time()
    wall = time.perf_counter()
    try:
        for kind, n, dtype, mode, seed in cases(args):
            spent = time.process_time() - start
            if spent > args.budget or time.perf_counter() - wall > args.wall:
                break
            tally = tallies[kind]
            try:
                run_case(kind, n, dtype, mode, seed, tally)
            except Exception as error:  # a case derive refuses (bad input) is noted
                what = f"{type(error).__name__}: {error}"
                tally.errors.append(f"{kind},{n},{dtype},{mode},{seed}: {what}")
            print(
                f"  {spent:7.1f} s  {kind:<15} n={n:<8} {dtype} {mode:<8} "
                f"worst used so far {tally.worst_used:.3g}",
                file=sys.stderr,
                flush=True,
            )
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM: the table of the cases run so far
        print("interrupted: the cases run so far", file=sys.stderr)
    cpu = time.process_time() - start
    print(
        f"\n{sum(t.cases for t in tallies.values())} cases, "
        f"{sum(t.values for t in tallies.values())} values checked, "
        f"{cpu:.0f} s CPU, {time.perf_counter() - wall:.0f} s wall\n"
    )
    print("| family | cases | values | worst used | worst error (u·M) | verdicts | failed |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for kind, tally in tallies.items():
        verdicts = ", ".join(f"{v} {c}" for v, c in sorted(tally.verdicts.items()))
        print(
            f"| {kind} | {tally.cases} | {tally.values} | {tally.worst_used:.3g} | "
            f"{tally.worst_um:.3g} | {verdicts} | {len(tally.failures)} |"
        )
    print()
    for kind, tally in tallies.items():
        if tally.worst_where:
            print(f"{kind}: worst used {tally.worst_used:.4g}: {tally.worst_where}")
    failures = [line for tally in tallies.values() for line in tally.failures]
    errors = [line for tally in tallies.values() for line in tally.errors]
    for line in failures:
        print("FAIL", line)
    for line in errors:
        print("ERROR", line)
    if failures:
        print(f"\n{len(failures)} values FAILED on a correct tape: rerun one with --case")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time and peak memory of `python -m derive report` for growing data sets.

    python bench/bench_inputs.py [--sizes 10,10000,1000000] [--repeat 3] [--steps N]
                                 [--check-reference]

Each size runs as its own process (median wall time of --repeat runs; peak resident
memory of the child), beside the two-sample report as the baseline. Targets: at most
2x the baseline's wall time and at most 1.5 GB at a million samples.

--check-reference also measures how far the fast reference used beyond 2000 samples
(error-free float64 transformations) is from the exact rational value, in float32 ULPs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_csv(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(n)
    x = rng.uniform(0, 10, n)
    y = 0.5 * x + 1 + rng.normal(0, 0.5, n)
    path = folder / f"n{n}.csv"
    with path.open("w") as handle:
        handle.write("x,y\n")
        handle.writelines(f"{a:.6g},{b:.6g}\n" for a, b in zip(x, y, strict=True))
    return path


def run(arguments: list[str], out: Path, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one report process."""
    command = [sys.executable, "-m", "derive", "report", "--quiet", "--init", "W=0.2,b=0.7"]
    command += extra
    command += ["--format", "html,pdf,json", "--out", str(out), *arguments]
    started = time.perf_counter()
    child = subprocess.Popen(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"report failed: {' '.join(command)}")
    return elapsed, usage.ru_maxrss / 1024


def check_reference(path: Path) -> None:
    from fractions import Fraction

    from derive.exact.reference import Samples, value
    from derive.models.registry import get_loss, get_model
    from derive.problem.datasets import read_csv
    from derive.problem.problem import make_problem
    from derive.symbolic.derivation import N, build_symbolic

    problem = make_problem(read_csv(str(path)), init={"W": 0.2, "b": 0.7})
    symbolic = build_symbolic(get_model("linear"), get_loss("mse"))
    samples = Samples.of(problem.x, problem.y)
    parameters = {k: Fraction(v) for k, v in problem.initial.values.items()}
    print(f"\nreference accuracy at n = {problem.n} (fast path vs exact rationals):")
    for name, formula in [("L", symbolic.loss)] + [
        (f"dL/d{k}", d.result) for k, d in symbolic.derivations.items()
    ]:
        fast = value(symbolic, formula, parameters, samples)
        xs = [Fraction(v) for v in problem.x]
        ys = [Fraction(v) for v in problem.y]
        function = symbolic.sample_function(formula.summand)
        args = list(parameters.values())
        terms = (function(*args, a, b) for a, b in zip(xs, ys, strict=True))
        exact = Fraction(str(formula.coefficient.subs(N, problem.n))) * sum(terms, Fraction(0))
        ulp = abs(float(np.spacing(np.float32(float(exact)))))
        print(
            f"  {name:>6}: |fast - exact| = {float(abs(fast - exact)):.3g}"
            f" = {float(abs(fast - exact)) / ulp:.2g} float32 ULP"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,10000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check-reference", action="store_true")
    parser.add_argument(
        "--steps", type=int, help="training steps for every run (default: the report's, 1000)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        cases = [("n = 2 (seed, baseline)", ["--data", "seed"])]
        for n in sizes:
            cases.append((f"n = {n:,}", ["--data", str(make_csv(root, n))]))
        print(f"{'case':<26}{'median wall s':>14}{'ratio':>8}{'peak MB':>10}")
        baseline = None
        for label, arguments in cases:
            extra = [] if args.steps is None else ["--steps", str(args.steps)]
            results = [run(arguments, root / "out", extra) for _ in range(args.repeat)]
            wall = statistics.median(r[0] for r in results)
            peak = max(r[1] for r in results)
            baseline = baseline or wall
            print(f"{label:<26}{wall:>14.2f}{wall / baseline:>8.2f}{peak:>10.0f}", flush=True)
        if args.check_reference:
            check_reference(make_csv(root, max(sizes)))
    print(f"\nmachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()

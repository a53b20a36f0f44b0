"""Wall time of a 10-feature report against the one-feature report, at n = 10,000.

    python bench/bench_features.py [--n 10000] [--features 10] [--repeat 5]

Both reports run as whole processes (`python -m derive report`, defaults: 1000 steps
checked, HTML + PDF + JSON), alternately, after one untimed run of each; the script
prints every run, the medians and their ratio. Target: at most 1.3.

The data are generated: features uniform in [0, 1), y a fixed linear combination plus
noise, so that the default learning rate is stable for both.
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

TARGET = 1.3


def make_csv(folder: Path, n: int, k: int) -> tuple[Path, str, str]:
    """The CSV file, its --columns and a pinned --init."""
    rng = np.random.default_rng(k)
    x = rng.uniform(0, 1, (n, k))
    y = x @ np.linspace(-1, 1, k) + 0.5 + rng.normal(0, 0.1, n)
    names = ["x"] if k == 1 else [f"x{j}" for j in range(1, k + 1)]
    path = folder / f"k{k}.csv"
    with path.open("w") as handle:
        handle.write(",".join([*names, "y"]) + "\n")
        for row, target in zip(x, y, strict=True):
            handle.write(",".join(f"{v:.6g}" for v in row) + f",{target:.6g}\n")
    weights = ["W"] if k == 1 else [f"W_{j}" for j in range(1, k + 1)]
    init = ",".join(f"{w}=0.2" for w in weights) + ",b=0.7"
    return path, ",".join([*names, "y"]), init


def run(path: Path, columns: str, init: str, out: Path) -> float:
    command = [
        sys.executable, "-m", "derive", "report", "--quiet", "--data", str(path),
        "--columns", columns, "--init", init, "--format", "html,pdf,json", "--out", str(out),
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: a check inconclusive or failed is still a report
        raise SystemExit(f"report failed ({done.returncode}): {' '.join(command)}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        one = make_csv(root, args.n, 1)
        many = make_csv(root, args.n, args.features)
        for setup in (one, many):  # untimed: caches, page-ins
            run(*setup, root / "warm")
        times: dict[int, list[float]] = {1: [], args.features: []}
        for repeat in range(args.repeat):
            for k, setup in ((1, one), (args.features, many)):
                elapsed = run(*setup, root / f"out{k}")
                times[k].append(elapsed)
                print(f"run {repeat + 1}: {k:>2} feature(s), n = {args.n}: {elapsed:6.2f} s")
    median_one = statistics.median(times[1])
    median_many = statistics.median(times[args.features])
    print(f"median, 1 feature:  {median_one:6.2f} s")
    print(f"median, {args.features} features: {median_many:6.2f} s")
    ratio = median_many / median_one
    print(
        f"ratio: {ratio:.2f} (target at most {TARGET}: {'met' if ratio <= TARGET else 'not met'})"
    )


if __name__ == "__main__":
    main()

"""The check's resolution: the smallest relative error it can flag, tolerance / |reference|.

For n = 10^2, 10^4 and 10^6 ordinary samples (x uniform on [0, 10], y = 0.3 x + 0.5
+ N(0, 0.01) noise, W = 0.5, b = 0.25, float32) it prints each quantity's k and
resolution with the bound the report uses (the depth of TensorFlow's CPU reduction,
with this machine's thread count) and with the order-free one (k = n - 1 + terms).
No TensorFlow is run: the tolerances need only the exact references and magnitudes.

    python bench/bench_resolution.py [--sizes 100,10000,1000000] [--threads T]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from derive.problem.problem import Dataset, Training, make_problem
from derive.report.build import prepare
from derive.tape.order import Order, intra_op_threads


def ordinary(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, n)
    y = 0.3 * x + 0.5 + rng.normal(0, 0.01, n)
    return Dataset("ordinary", tuple(x.tolist()), tuple(y.tolist()), "bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,10000,1000000")
    parser.add_argument("--threads", type=int, default=0, help="0: the CPUs available")
    args = parser.parse_args()
    threads = intra_op_threads(args.threads)
    order = Order("eager", threads, "2.21.0", "x86_64", confirmed=True)
    print(f"resolution = tolerance / |reference|; CPU order with up to {threads} threads")
    print(
        f"{'n':>9} {'value':>6} {'k order':>8} {'resolution':>11} {'k free':>8} {'resolution':>11}"
    )
    for n in (int(s) for s in args.sizes.split(",")):
        problem = make_problem(ordinary(n), init={"W": 0.5, "b": 0.25}, training=Training(steps=0))
        ground = prepare(problem)
        ordered, free = ground.bounds_for(order), ground.bounds_for(None)
        for (key, quantity, *_), new, old in zip(ground.quantities, ordered, free, strict=True):
            size = abs(float(ground.references[key]))
            print(
                f"{n:>9} {quantity:>6} {new.roundings:>8} {new.value / size:>11.2e}"
                f" {old.roundings:>8} {old.value / size:>11.2e}"
            )


if __name__ == "__main__":
    main()

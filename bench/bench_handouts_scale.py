"""How the handouts scale: with the class's size, with --jobs, and in Korean.

    python bench/bench_handouts_scale.py [--repeat 5] [--large 200] [--wait-idle 30]

Each figure is the median of `--repeat` alternating pairs of whole processes
(``python -m derive handouts --seed 1 ...``), after one untimed run of each:

- 30 sheets against `--large` sheets (default 200), both with the default --jobs
  (target: at most large/30 x 1.1 of the 30-sheet time);
- --jobs 1 against the default (one process per core): the speed-up;
- Korean against English, 30 sheets (target: at most 1.2).

Run it from the repository root. On a shared machine add ``--wait-idle 30``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed import median, pairs, verdict
from bench_training import machine, versions

TARGETS = {"scale": 1.1, "korean": 1.2}


def handouts(out: str, name: str, *extra: str) -> tuple[str, list[str]]:
    command = [sys.executable, "-m", "derive", "handouts", "--seed", "1", "--quiet"]
    return name, [*command, "--out", str(Path(out) / name), *extra]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed pairs (default 5)")
    parser.add_argument("--large", type=int, default=200, help="the large class (default 200)")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS")
    args = parser.parse_args()
    print(f"machine: {machine()}; {versions()}; cores: {os.cpu_count()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="derive-handouts-") as out:
        small = handouts(out, "30", "--count", "30")
        print(f"30 sheets against {args.large}:", flush=True)
        size = pairs(
            small, handouts(out, "large", "--count", str(args.large)), args.repeat, args.wait_idle
        )
        print("--jobs 1 against the default:", flush=True)
        jobs = pairs(
            handouts(out, "one", "--count", "30", "--jobs", "1"), small, args.repeat, args.wait_idle
        )
        print("Korean against English, 30 sheets:", flush=True)
        korean = pairs(
            handouts(out, "ko", "--count", "30", "--lang", "ko"), small, args.repeat, args.wait_idle
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    t30, large = median(size["30"], 0), median(size["large"], 0)
    allowed = args.large / 30 * TARGETS["scale"]
    print(
        f"{args.large} sheets {large:.1f} s / 30 sheets {t30:.1f} s: {large / t30:.2f}"
        f" (target {allowed:.2f}: {verdict(large / t30, allowed)})"
    )
    one, default = median(jobs["one"], 0), median(jobs["30"], 0)
    print(f"--jobs 1 {one:.1f} s / default {default:.1f} s: speed-up {one / default:.2f}")
    ko, en = median(korean["ko"], 0), median(korean["30"], 0)
    print(
        f"Korean {ko:.1f} s / English {en:.1f} s: {ko / en:.2f}"
        f" (target {TARGETS['korean']}: {verdict(ko / en, TARGETS['korean'])})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 16's figures: the default report against the plain script, the report's sizes,
and a Korean report against an English one.

    python bench/bench_speed.py [--repeat 5] [--wait-idle 30] [--no-korean]

Prints, as medians of `--repeat` alternating pairs after one untimed run of each:

- wall and CPU time (all processes of a run) of ``python -m derive report`` with its
  defaults (1000 steps, every one checked; HTML + PDF + JSON) and of
  ``bench/plain_sgd.py``, and their ratios (targets: wall 0.8, CPU 1.6);
- the sizes of the HTML and PDF those reports wrote (targets: 500 KB and 600 KB);
- the wall time of the same report (``--seed 1``) in Korean and in English, and their
  ratio (target: 1.2).

Run it from the repository root. On a shared machine add ``--wait-idle 30``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_training import machine, timed, versions, wait_until_idle

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"wall": 0.8, "cpu": 1.6, "html": 500_000, "pdf": 600_000, "korean": 1.2}


def report_command(out: str, *extra: str) -> list[str]:
    derive = [sys.executable, "-m", "derive", "report", "--format", "html,pdf,json"]
    return [*derive, "--out", out, "--quiet", *extra]


def pairs(
    first: tuple[str, list[str]], second: tuple[str, list[str]], repeat: int, wait: float
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) of each run, `repeat` pairs, alternating which one runs first."""
    runs: dict[str, list[tuple[float, float]]] = {first[0]: [], second[0]: []}
    timed(first[1])
    timed(second[1])
    for index in range(repeat):
        for name, command in (first, second) if index % 2 == 0 else (second, first):
            if wait:
                wait_until_idle(wait)
            runs[name].append(timed(command))
        print(
            f"  pair {index + 1}: "
            + ", ".join(f"{name} {values[-1][0]:.2f} s" for name, values in runs.items()),
            flush=True,
        )
    return runs


def median(values: list[tuple[float, float]], which: int) -> float:
    return statistics.median(value[which] for value in values)


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed pairs (default 5)")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS")
    parser.add_argument("--no-korean", action="store_true", help="skip the Korean pairs")
    args = parser.parse_args()
    print(f"machine: {machine()}; {versions()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="derive-speed-") as out:
        plain = [sys.executable, str(ROOT / "bench" / "plain_sgd.py")]
        print("default report against the plain script:", flush=True)
        runs = pairs(("report", report_command(out)), ("plain", plain), args.repeat, args.wait_idle)
        sizes = {kind: (Path(out) / f"seed.{kind}").stat().st_size for kind in ("html", "pdf")}
        korean: dict[str, list[tuple[float, float]]] = {}
        if not args.no_korean:
            print("Korean against English (--seed 1):", flush=True)
            korean = pairs(
                ("ko", report_command(out, "--seed", "1", "--lang", "ko", "--name", "ko")),
                ("en", report_command(out, "--seed", "1", "--lang", "en", "--name", "en")),
                args.repeat,
                args.wait_idle,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    wall = median(runs["report"], 0) / median(runs["plain"], 0)
    cpu = median(runs["report"], 1) / median(runs["plain"], 1)
    print(f"{'medians of ' + str(args.repeat):28}{'wall, s':>9}{'CPU, s':>9}")
    for name in ("report", "plain"):
        print(f"{name:28}{median(runs[name], 0):9.2f}{median(runs[name], 1):9.2f}")
    print(f"report / plain, wall: {wall:.2f} (target {TARGETS['wall']}: {verdict(wall, 0.8)})")
    print(f"report / plain, CPU:  {cpu:.2f} (target {TARGETS['cpu']}: {verdict(cpu, 1.6)})")
    for kind, size in sizes.items():
        target = TARGETS[kind]
        print(f"{kind.upper()}: {size / 1000:.0f} KB (target {target // 1000} KB:", end=" ")
        print(f"{verdict(size, target)})")
    if korean:
        ratio = median(korean["ko"], 0) / median(korean["en"], 0)
        print(
            f"Korean {median(korean['ko'], 0):.2f} s / English {median(korean['en'], 0):.2f} s:"
            f" {ratio:.2f} (target {TARGETS['korean']}: {verdict(ratio, 1.2)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of a class set of handouts against one report.

    python bench/bench_handouts.py [--count 30] [--repeat 3] [--lang en]

Times `python -m derive handouts --count N` (N sheets + N keys + the two combined PDFs
+ the index) and `python -m derive report`, each as its own process, the median of
--repeat runs, and prints the ratio. Target: at most 3x the report's wall time.
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

ROOT = Path(__file__).resolve().parent.parent


def wall_time(arguments: list[str], out: Path) -> float:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "derive", *arguments, "--quiet", "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=environment, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lang", default="en")
    args = parser.parse_args()
    handouts, report = [], []
    with tempfile.TemporaryDirectory() as folder:
        for k in range(args.repeat):
            out = Path(folder) / str(k)
            handouts.append(
                wall_time(
                    ["handouts", "--count", str(args.count), "--seed", "1", "--lang", args.lang],
                    out / "handouts",
                )
            )
            report.append(wall_time(["report", "--seed", "1", "--lang", args.lang], out / "report"))
    h, r = statistics.median(handouts), statistics.median(report)
    print(f"handouts, {args.count} sheets + {args.count} keys + combined PDFs: {h:6.2f} s")
    print(f"one report:                                            {r:6.2f} s")
    print(f"ratio: {h / r:.2f} (target <= 3)   cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()

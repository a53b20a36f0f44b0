"""Wall time of the full, verified report against the plain training script.

Runs, side by side and alternating, ``python -m derive report`` with its defaults
(seed data, 1000 SGD steps, every step checked; HTML + PDF + JSON) and
``bench/plain_sgd.py`` (the same 1000 eager GradientTape steps, printing their
values, as the original script does), and prints the median wall times and their
ratio. Both write their output to files or /dev/null; nothing is printed to a terminal.

    python bench/bench_training.py [--repeat 5] [--steps 1000]

Run it from the repository root (the report needs ``derive`` importable).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores, Python {platform.python_version()}"


def versions() -> str:
    code = "import tensorflow as tf, weasyprint; print(tf.__version__, weasyprint.__version__)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment()
    )
    tensorflow, weasyprint = [*result.stdout.split(), "?", "?"][:2]
    return f"TensorFlow {tensorflow}, WeasyPrint {weasyprint}"


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def _busy_fraction(interval: float = 0.5) -> float:
    """How busy the machine's CPUs were over `interval` seconds (Linux /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(interval)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_until_idle(limit: float) -> None:
    """Wait (at most `limit` seconds) until other work leaves the CPUs alone."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if _busy_fraction() < 0.1:
                return
        except OSError:  # no /proc/stat: do not wait
            return
    print("  (the machine stayed busy; timing anyway)", flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (all processes of the run) of one run."""
    cpu = _children_cpu()
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=ROOT, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - started
    # The report exits 1 when a check fails; anything else is a broken run.
    if result.returncode not in (0, 1):
        sys.exit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stderr.decode()}")
    return elapsed, _children_cpu() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="SECONDS",
        help="before each run, wait up to this long for other work to leave the CPUs "
        "(on a shared machine; default 0: do not wait)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="derive-bench-") as out:
        plain = [sys.executable, str(ROOT / "bench" / "plain_sgd.py"), "--steps", str(args.steps)]
        report = [
            sys.executable,
            "-m",
            "derive",
            "report",
            "--steps",
            str(args.steps),
            "--format",
            "html,pdf,json",
            "--out",
            out,
            "--quiet",
        ]
        print(f"machine: {machine()}; {versions()}")
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        print("warming up (one untimed run of each) ...", flush=True)
        timed(plain)
        timed(report)
        times: dict[str, list[float]] = {"plain script": [], "derive report": []}
        cpu: dict[str, list[float]] = {"plain script": [], "derive report": []}
        for run in range(args.repeat):
            # Alternate the order, so neither side always runs on a warmer machine.
            order = [("plain script", plain), ("derive report", report)]
            for name, command in order if run % 2 == 0 else order[::-1]:
                if args.wait_idle:
                    wait_until_idle(args.wait_idle)
                wall, used = timed(command)
                times[name].append(wall)
                cpu[name].append(used)
            print(
                f"run {run + 1}: plain {times['plain script'][-1]:.2f} s, "
                f"report {times['derive report'][-1]:.2f} s",
                flush=True,
            )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    print()
    print(f"{'wall time, s':16}{'median':>9}{'min':>9}{'max':>9}{'CPU, s':>9}")
    for name, values in times.items():
        print(
            f"{name:16}{medians[name]:9.2f}{min(values):9.2f}{max(values):9.2f}"
            f"{statistics.median(cpu[name]):9.2f}"
        )
    ratio = medians["derive report"] / medians["plain script"]
    print(f"\nratio (report / plain script, medians of {args.repeat}): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

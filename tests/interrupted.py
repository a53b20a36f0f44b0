"""Run the command line in a child process that pauses at a named point, and signal it
there: the one way the signal tests of report and handouts interrupt a run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


def signal_when_paused(
    arguments: Sequence[str], pause: str, signum: int, environment: Mapping[str, str]
) -> tuple[int, str, str]:
    """Run tests.cli_driver with `arguments`, pausing at `pause`; send `signum` there.
    Returns (exit code, standard error, the driver's PAUSED line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cli_driver", *arguments],
        cwd=REPOSITORY,
        env={**os.environ, **environment, "DERIVE_PAUSE_AT": pause},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PAUSED"):
        process.kill()
        pytest.fail(f"never paused at {pause}: {line}{process.communicate()[1]}")
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()  # not left running, its pipes not left open for later tests
        process.communicate()
        pytest.fail(f"still running 120 s after {signum} at {pause}")
    return process.returncode, err, line

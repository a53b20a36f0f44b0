"""`python -m derive handouts` ended by SIGTERM (or SIGHUP) leaves no half-written file
and overwrites nothing: while the rendering workers print, while the first file is
written, the earlier set is untouched (byte for byte, no temporary file, no worker left
running); a signal during the renames waits for the last one, so the folder holds the
whole new set, never a mix. Without TensorFlow: the keys are checked against the float32
emulation (tests/cli_driver.py, DERIVE_EMULATED=1)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from derive.cli.main import main
from tests.emulated_tape import emulated_tape
from tests.interrupted import signal_when_paused

COMMON = ("index.html", "sheets.pdf", "keys.pdf")  # the same names in every set


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """A folder holding an earlier set: one sheet and its key, class seed 3."""
    folder = tmp_path_factory.mktemp("handouts")
    patch = pytest.MonkeyPatch()
    patch.setattr("derive.tape.gradient.gradient_at", emulated_tape)
    try:
        arguments = ["--count", "1", "--seed", "3", "--quiet", "--out", str(folder)]
        assert main(["handouts", *arguments]) == 0
    finally:
        patch.undo()
    return folder


@pytest.fixture
def out(earlier, tmp_path) -> Path:
    folder = tmp_path / "handouts"
    folder.mkdir()
    for path in earlier.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _left_running(marker: str) -> list[int]:
    """Processes whose command line holds `marker` (forked workers keep the parent's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in command:
            found.append(int(entry.name))
    return found


def _signalled(pause: str, signum: int, out: Path) -> tuple[int, str]:
    """Run `handouts` (another class seed: other sheet names, the same common names),
    pausing at `pause`; send `signum` there. (exit code, standard error)."""
    arguments = ["handouts", "--count", "1", "--seed", "4", "--quiet", "--out", str(out)]
    code, err, _ = signal_when_paused(arguments, pause, signum, {"DERIVE_EMULATED": "1"})
    return code, err


@pytest.mark.parametrize(
    ("pause", "signum"),
    [("rendering", signal.SIGTERM), ("staging", signal.SIGTERM), ("staging", signal.SIGHUP)],
)
def test_a_signal_before_the_renames_changes_nothing(out, pause, signum):
    before = _snapshot(out)
    assert set(COMMON) <= set(before) and len(before) == 2 + len(COMMON)
    code, err = _signalled(pause, signum, out)
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert err == f"error: interrupted by {name} (no file was written or changed)\n"
    assert _snapshot(out) == before  # byte for byte: nothing new, nothing half-written
    deadline = time.monotonic() + 10
    while _left_running(str(out)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _left_running(str(out))  # the rendering workers were ended too


def test_a_signal_during_the_renames_waits_for_the_last(out):
    before = _snapshot(out)
    code, err = _signalled("renaming", signal.SIGTERM, out)
    after = _snapshot(out)
    assert code == 128 + signal.SIGTERM
    assert err.startswith("error: interrupted by SIGTERM (after writing 5 files in full: ")
    assert not [name for name in after if name.endswith(".tmp")]
    # The whole new set: its sheet and key beside the earlier ones, and every
    # common file replaced.
    assert len(after) == len(before) + 2
    assert all(after[name] != before[name] for name in COMMON)
    assert all(after[name] == before[name] for name in before if name not in COMMON)
    index = after["index.html"].decode()
    assert all(name in index for name in set(after) - set(before))  # the new set's index

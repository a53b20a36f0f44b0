"""The command line with a pause at a chosen moment, for the signal tests.

Run as ``python -m tests.cli_driver ARGS...`` from the repository. DERIVE_PAUSE_AT picks
the moment; the driver prints ``PAUSED <pid of the training process or 0>`` on
standard output when it is there, so that the test can send its signal then:

    started   the training process has just been started
    training  waiting for the training run (the child imports TensorFlow and trains)
    staging   while the first temporary file is written (until a signal comes)
    renaming  after the first of several renames (for a second; signals are held)
    rendering handouts: the rendering workers have just been given the pages

DERIVE_EMULATED=1 runs on the float32 emulation instead of TensorFlow (no child; the
handouts' keys are checked against it too).
"""

from __future__ import annotations

import os
import sys
import time

import derive.cli.background
import derive.cli.main as cli
import derive.cli.pipeline
import derive.handouts.files
import derive.render.files
import derive.tape.gradient

PAUSE_AT = os.environ.get("DERIVE_PAUSE_AT", "")


def announce(pid: int = 0) -> None:
    print(f"PAUSED {pid}", flush=True)


def _emulate() -> None:
    from derive.render.outputs import render_all
    from derive.report.build import explain
    from tests.emulated_tape import emulated_tape

    class NoJob:
        def close(self) -> None:
            pass

    def run(job, problem, wrong_derivative, formats, progress, *, lang="en", backward=True):  # type: ignore[no-untyped-def]
        report = explain(problem, wrong_derivative, tape=emulated_tape, backward=False)
        return report, render_all(report, formats, lang=lang)

    derive.cli.background.TrainingJob = NoJob  # type: ignore[misc,assignment]
    derive.cli.pipeline.run = run  # type: ignore[assignment]
    derive.tape.gradient.gradient_at = emulated_tape  # type: ignore[assignment]


def _pause_when_started() -> None:
    start = cli._start_training

    def started(arguments):  # type: ignore[no-untyped-def]
        job = start(arguments)
        announce(job._process.pid)
        return job

    cli._start_training = started  # type: ignore[assignment]


def _pause_while_training() -> None:
    result = derive.cli.background.TrainingJob.result

    def waiting(self):  # type: ignore[no-untyped-def]
        announce(self._process.pid)
        return result(self)

    derive.cli.background.TrainingJob.result = waiting  # type: ignore[method-assign]


def _pause_while_staging() -> None:
    fsync = os.fsync

    def slow(descriptor: int) -> None:
        announce()
        time.sleep(60)  # a signal ends it
        fsync(descriptor)

    derive.render.files.os.fsync = slow  # type: ignore[attr-defined]


def _pause_while_renaming() -> None:
    replace = os.replace
    done = []

    def slow(source, target):  # type: ignore[no-untyped-def]
        replace(source, target)
        if not done:
            done.append(target)
            announce()
            time.sleep(1)

    derive.render.files.os.replace = slow  # type: ignore[attr-defined]


def _pause_while_rendering() -> None:
    render_files = derive.handouts.files.render_files

    def announced(*args, **kwargs):  # type: ignore[no-untyped-def]
        announce()
        return render_files(*args, **kwargs)

    derive.handouts.files.render_files = announced  # type: ignore[assignment]


PAUSES = {
    "started": _pause_when_started,
    "training": _pause_while_training,
    "staging": _pause_while_staging,
    "renaming": _pause_while_renaming,
    "rendering": _pause_while_rendering,
}


if __name__ == "__main__":
    if os.environ.get("DERIVE_EMULATED") == "1":
        _emulate()
    PAUSES[PAUSE_AT]()
    sys.exit(cli.main(sys.argv[1:]))

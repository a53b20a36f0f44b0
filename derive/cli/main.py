"""Command line: ``python -m derive report``.

main(argv) only parses and calls the library; errors become one line on stderr and
an exit code here, in one place.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..common.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    DeriveError,
    InputError,
)
from .parser import build_parser
from .report import run_report

if TYPE_CHECKING:
    from .background import TrainingJob


def _start_training(arguments: Sequence[str]) -> TrainingJob | None:
    """Importing TensorFlow takes seconds, so the process that trains starts before
    anything else, before the command line is even read; it waits for its problem.
    An invalid command line just ends it again."""
    if "report" not in arguments or {"-h", "--help"} & set(arguments):
        return None
    from .background import TrainingJob

    return TrainingJob()


def main(argv: Sequence[str] | None = None) -> int:
    from ..common.signals import Interrupted, raised_as_exceptions, take_written

    arguments = list(sys.argv[1:] if argv is None else argv)
    take_written()
    try:
        # SIGTERM and SIGHUP unwind the run as Ctrl-C does: every clean-up runs.
        with raised_as_exceptions():
            return _command(arguments)
    except (Interrupted, KeyboardInterrupt) as interrupt:
        signal_name, code = (
            (interrupt.name, interrupt.exit_code)
            if isinstance(interrupt, Interrupted)
            else ("SIGINT", 128 + 2)
        )
        _error_line(f"interrupted by {signal_name} ({_what_was_written(take_written())})")
        return code


def _what_was_written(written: Sequence[Path]) -> str:
    if not written:
        return "no file was written or changed"
    return f"after writing {len(written)} files in full: " + ", ".join(map(str, written))


def _command(arguments: list[str]) -> int:
    from ..common.signals import deferred

    job: TrainingJob | None = None
    debug = "--debug" in arguments  # until the command line is read
    try:
        with deferred():  # a training process started is one recorded here, and ended
            job = _start_training(arguments)
        parser = build_parser()
        args = parser.parse_args(arguments)
        debug = args.debug
        if args.command is None:
            parser.print_usage(sys.stderr)
            raise InputError("no command given; choose report or handouts", "none")
        if args.command == "handouts":
            from .handouts import run_handouts

            return run_handouts(args)
        if job is None:
            from .background import TrainingJob

            with deferred():
                job = TrainingJob()
        return run_report(args, job)
    except SystemExit as finished:  # --help and --version print and finish here
        return finished.code if isinstance(finished.code, int) else EXIT_OK
    except DeriveError as error:
        if debug and error.exit_code == EXIT_INTERNAL:
            traceback.print_exc()
        _error_line(str(error))
        return error.exit_code
    except Exception as error:  # the one place where unexpected errors become a message
        if debug:
            traceback.print_exc()
        _error_line(
            f"internal error: {type(error).__name__}: {error}"
            + ("" if debug else " (run again with --debug for the traceback)")
        )
        return EXIT_INTERNAL
    finally:
        if job is not None:
            job.close()


def _error_line(message: str) -> None:
    from .progress import erase_bar

    erase_bar()  # a progress bar on the terminal would swallow the start of the line
    print(f"error: {message}", file=sys.stderr)

"""SIGINT, SIGTERM and SIGHUP as an exception, so that a run unwinds as for Ctrl-C.

Unwinding runs every ``finally`` and ``except BaseException`` on the way out: the
temporary files are removed, the training process and the rendering workers are
ended, and the command line prints one line and exits with 128 + the signal's number.
Without it, SIGTERM and SIGHUP end the process where it stands.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A termination signal arrived. A BaseException, as KeyboardInterrupt, so that
    no ``except Exception`` on the way out mistakes it for an error of the run."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(self.name)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def raised_as_exceptions() -> Iterator[None]:
    """Within the block, the signals raise :class:`Interrupted` (once: a second signal
    must not break the clean-up the first one started). Signals the caller ignores
    stay ignored (``nohup`` ignores SIGHUP), and the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the caller's stay in force
        return
    _raised.clear()

    def handler(signum: int, _frame: object) -> None:
        if _held:
            _held.append(signum)  # raised when the block that holds them ends
        elif not _raised:
            _raise(signum)

    previous = {number: signal.getsignal(number) for number in HANDLED}
    for number, old in previous.items():
        if old is not signal.SIG_IGN:
            signal.signal(number, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            if old is not None and old is not signal.SIG_IGN:
                signal.signal(number, old)


# The signal raised as Interrupted in this run, if any: the first one only, so that a
# second signal cannot break off the clean-up the first one started.
_raised: list[int] = []


def _raise(signum: int) -> None:
    _raised.append(signum)
    raise Interrupted(signum)


# While a block holds the signals: a marker, then the signals that came meanwhile.
_held: list[int] = []
_HOLDING = 0


@contextmanager
def deferred() -> Iterator[None]:
    """Hold the signals back during the block and deliver them at its end, so that
    the block's work is done whole (several renames, a child started and recorded).

    Two holds: the handler of :func:`raised_as_exceptions` notes a signal and returns
    (the kernel may hand a signal to any thread that does not block it, and Python then
    runs the handler in the main thread, wherever it is), and this thread's mask blocks
    the signals for the handlers Python installs (Ctrl-C's KeyboardInterrupt)."""
    outermost = not _held
    if outermost:
        _held.append(_HOLDING)
    masked = hasattr(signal, "pthread_sigmask")  # not on Windows
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED) if masked else None
    try:
        yield
    finally:
        if masked:
            # A signal blocked so far reaches its handler inside this call.
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # type: ignore[arg-type]
        if outermost:
            arrived = _held[1:]
            _held.clear()
            if arrived and not _raised:
                _raise(arrived[0])


# The files renamed into place since the command line last asked, so that a signal
# that comes after them is not reported as having left every file unchanged.
_written: list[Path] = []


def note_written(paths: Iterable[Path]) -> None:
    _written.extend(paths)


def take_written() -> list[Path]:
    """The files written since the last call, and forget them."""
    taken = list(_written)
    _written.clear()
    return taken

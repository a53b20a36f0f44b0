"""Train in a child process, so that TensorFlow's import overlaps everything else.

Importing TensorFlow takes seconds, and SymPy, the exact references and most of the
rendering need none of it. The command line starts a :class:`TrainingJob` first and
works on while the child imports TensorFlow and trains (``derive.tape.training.train``). The
child then draws the training plots (TensorFlow has loaded matplotlib already) while
this process checks the steps.

The conversation, over the child's standard input and output, in length-prefixed
pickles (both ends are this package):

    parent -> child   Problem                       child: import TensorFlow, train,
                                                    replay the ops node by node
    child  -> parent  ("ok", Trace) | ("error", message)
    parent -> child   PlotSpec | None
    child  -> parent  ("ok", {name: svg}) | ("error", message)
    parent -> child   True | False                  the sample arrays as JSON?
    child  -> parent  ("ok", EncodedSamples)        (when True; the child is idle by
                                                    then, this process is not)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..common.errors import DeriveError

if TYPE_CHECKING:  # starting the child must not wait for NumPy: nothing heavy is imported
    from ..problem.problem import Problem
    from ..render.jsonfile import EncodedSamples
    from ..report.plotspec import PlotSpec
    from ..tape.training import Trace

_LENGTH = struct.Struct(">Q")


class TrainingError(DeriveError):
    """The training process failed; the message says how."""


def _send(stream: IO[bytes], message: object) -> None:
    data = pickle.dumps(message)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        raise EOFError("the other process closed the pipe")
    (size,) = _LENGTH.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other process closed the pipe")
    return pickle.loads(data)


class TrainingJob:
    """``derive.tape.training.train(problem)`` in a child process, then the plots."""

    def __init__(self) -> None:
        environment = dict(os.environ)
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        package_root = str(Path(__file__).resolve().parents[2])
        environment["PYTHONPATH"] = os.pathsep.join(
            [package_root, *filter(None, [environment.get("PYTHONPATH")])]
        )
        self._process = subprocess.Popen(
            [sys.executable, "-m", "derive.cli.background"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
        )
        self._errors: list[bytes] = []
        # Drain standard error as it comes, so a chatty child can never block on it.
        self._drain = threading.Thread(target=self._collect_errors, daemon=True)
        self._drain.start()
        self._trace: Trace | None = None
        self._sending: threading.Thread | None = None

    def _collect_errors(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._errors.append(line)

    def _failure(self, what: str) -> TrainingError:
        self._process.wait()
        self._drain.join(timeout=1)
        lines = b"".join(self._errors).decode("utf-8", "replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit status {self._process.returncode}"
        return TrainingError(f"the training process failed {what}: {detail}")

    def _talk(self, message: object | None = None, *, send: bool = False) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            if send:
                _send(self._process.stdin, message)
                return None
            status, payload = _receive(self._process.stdout)
        except (BrokenPipeError, EOFError, pickle.UnpicklingError):
            raise self._failure("unexpectedly") from None
        if status != "ok":
            raise TrainingError(f"training failed: {payload}")
        return payload

    def _send_in_background(self, message: object) -> None:
        """Send without waiting: the child reads only once TensorFlow is loaded, and a
        large message (a million samples) would hold this process until then. Messages
        still leave in order, each after the one before."""
        previous = self._sending

        def send() -> None:
            if previous is not None:
                previous.join()
            # A child that has gone (or was closed) is reported by the next receive.
            with contextlib.suppress(TrainingError, OSError, ValueError):
                self._talk(message, send=True)

        self._sending = threading.Thread(target=send, daemon=True)
        self._sending.start()

    def submit(self, problem: Problem) -> None:
        """Hand the child the problem; it starts training once TensorFlow is loaded."""
        self._send_in_background(problem)

    def result(self) -> Trace:
        """Wait for the training run."""
        if self._trace is None:
            self._trace = self._talk()
        return self._trace

    def request_plots(self, spec: PlotSpec | None) -> None:
        """Ask for the plots of the run (None: no plots, the child may finish)."""
        self._send_in_background(spec)

    def plots(self) -> dict[str, str]:
        """Wait for the plots asked for with request_plots."""
        return self._talk()  # type: ignore[no-any-return]

    def request_samples_json(self, wanted: bool) -> None:
        """Say, after request_plots, whether to write the sample arrays as JSON."""
        self._send_in_background(wanted)

    def samples_json(self) -> EncodedSamples:
        """Wait for the arrays asked for (after the plots, if any were asked for)."""
        return self._talk()  # type: ignore[no-any-return]

    def close(self) -> None:
        """End the child. After its last message it has nothing left to do but tear
        TensorFlow down, and before that its work is no longer wanted: either way it
        is stopped at once rather than waited for."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        if self._sending is not None:
            self._sending.join(timeout=1)  # fails at once now that the child is gone
        for stream in (self._process.stdout, self._process.stdin):
            if stream is not None and not stream.closed:
                stream.close()
        self._drain.join(timeout=1)
        if self._process.stderr is not None and not self._drain.is_alive():
            self._process.stderr.close()


def _child() -> int:
    import signal

    # Started while the parent held its termination signals back (so that the child is
    # recorded before a signal can end the parent): a child inherits that mask.
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    from ..tape.backward import backward_at
    from ..tape.tensorflow import tensorflow
    from ..tape.training import train

    tensorflow()  # the slow part, started before the problem arrives
    receive, reply = sys.stdin.buffer, sys.stdout.buffer
    try:
        problem = _receive(receive)
    except EOFError:
        return 0
    try:
        trace = train(problem)
        # The backward section's replay too, while TensorFlow is loaded here.
        nodes = (*problem.model_entry.graph, *problem.loss_entry.graph)
        trace = dataclasses.replace(trace, backward=backward_at(problem, nodes))
    except Exception as error:  # reported by the parent as one line
        _send(reply, ("error", f"{type(error).__name__}: {error}"))
        return 1
    _send(reply, ("ok", trace))
    try:
        spec = _receive(receive)
        if spec is not None:
            _answer(reply, lambda: _plots(spec, trace))
        if _receive(receive):
            _answer(reply, lambda: _samples_json(problem))
    except EOFError:
        return 0  # the parent needs nothing more
    except _Failed:
        return 1
    return 0


class _Failed(Exception):
    """An answer failed; the parent has been told."""


def _answer(reply: IO[bytes], work: Callable[[], object]) -> None:
    try:
        result = work()
    except Exception as error:  # reported by the parent as one line
        _send(reply, ("error", f"{type(error).__name__}: {error}"))
        raise _Failed from error
    _send(reply, ("ok", result))


def _plots(spec: PlotSpec, trace: Trace) -> dict[str, str]:
    from ..render.plotdata import plot_data_from_trace
    from ..render.plots import training_plots

    return training_plots(plot_data_from_trace(spec, trace))


def _samples_json(problem: Problem) -> EncodedSamples:
    from ..render.jsonfile import EncodedSamples

    return EncodedSamples.of_problem(problem)


if __name__ == "__main__":
    sys.exit(_child())

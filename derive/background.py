"""Train in a child process, so that TensorFlow's import overlaps everything else.

Importing TensorFlow takes seconds, and SymPy, the exact references and most of the
rendering need none of it. The command line starts :class:`TrainingJob` first,
works on while the child imports TensorFlow and trains (``derive.tape.train``), and
collects the :class:`~derive.tape.Trace` when it needs the tape's numbers.

The child is ``python -m derive.background``: it reads a pickled Problem on standard
input and writes a pickled ("ok", Trace) or ("error", message) on standard output.
Both ends are this package, so pickle carries nothing foreign.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

from .errors import DeriveError
from .problem import Problem
from .tape import Trace


class TrainingError(DeriveError):
    """The training process failed; the message says how."""


class TrainingJob:
    """``derive.tape.train(problem)`` running in a child process."""

    def __init__(self, problem: Problem) -> None:
        environment = dict(os.environ)
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        package_root = str(Path(__file__).resolve().parent.parent)
        environment["PYTHONPATH"] = os.pathsep.join(
            [package_root, *filter(None, [environment.get("PYTHONPATH")])]
        )
        self._process = subprocess.Popen(
            [sys.executable, "-m", "derive.background"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
        )
        stdin, self._process.stdin = self._process.stdin, None  # communicate() leaves it be
        assert stdin is not None
        try:
            stdin.write(pickle.dumps(problem))
            stdin.close()
        except BrokenPipeError:
            pass  # the child died at start; result() reports why
        self._trace: Trace | None = None

    def result(self) -> Trace:
        """Wait for the child and return its trace."""
        if self._trace is not None:
            return self._trace
        output, errors = self._process.communicate()
        try:
            status, payload = pickle.loads(output)
        except Exception:
            lines = errors.decode("utf-8", "replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit status {self._process.returncode}"
            raise TrainingError(f"the training process failed: {detail}") from None
        if status != "ok":
            raise TrainingError(f"training failed: {payload}")
        self._trace = payload
        return payload

    def cancel(self) -> None:
        """Stop the child if it is still running (after an error elsewhere)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


def main() -> int:
    from .tape import train

    problem = pickle.load(sys.stdin.buffer)
    try:
        message: tuple[str, object] = ("ok", train(problem))
    except Exception as error:  # reported by the parent as one line
        message = ("error", f"{type(error).__name__}: {error}")
    sys.stdout.buffer.write(pickle.dumps(message))
    sys.stdout.buffer.flush()
    return 0 if message[0] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())

"""``python -m derive`` and the ``derive`` command: the entry point, nothing else.

The command line itself is derive/cli."""

from __future__ import annotations

import os
import sys

from .cli.main import main

__all__ = ["main"]


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    code = main()
    # Every file is written and synced, the training process has ended: flush the two
    # streams and leave, without the interpreter tearing SymPy, WeasyPrint and NumPy
    # down object by object (a quarter of a second).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

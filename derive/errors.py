"""The errors derive raises on purpose, and the exit codes they map to.

Every error a user can cause names *what* is wrong and shows the offending *value*;
the command line turns it into one line, ``error: <what> (<value>)``, and exit code 2.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class DeriveError(Exception):
    """Base class for errors that derive reports as one line, without a traceback."""

    exit_code = EXIT_INTERNAL


class _WhatAndValue(DeriveError):
    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, value: object) -> None:
        self.what = what
        self.value = value
        super().__init__(f"{what} ({value})")


class InputError(_WhatAndValue, ValueError):
    """Something the user supplied is wrong."""


class OutputError(_WhatAndValue):
    """A report could not be written; earlier files are left as they were."""


class RenderError(DeriveError):
    """A formula or the PDF could not be rendered."""

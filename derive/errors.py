"""The errors derive raises on purpose, and the exit codes they map to.

Every error a user can cause is an :class:`InputError`; the command line turns it
into one line of the form ``error: <what> (<value>)`` and exit code 2.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class DeriveError(Exception):
    """Base class for errors that derive reports as one line, without a traceback."""

    exit_code = EXIT_INTERNAL


class InputError(DeriveError, ValueError):
    """Something the user supplied is wrong: names *what* and shows the offending *value*."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, value: object) -> None:
        self.what = what
        self.value = value
        super().__init__(f"{what} ({value})")


class OutputError(DeriveError):
    """A report could not be written; earlier files are left as they were."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, value: object) -> None:
        self.what = what
        self.value = value
        super().__init__(f"{what} ({value})")


class RenderError(DeriveError):
    """A formula or the PDF could not be rendered."""

    exit_code = EXIT_INTERNAL

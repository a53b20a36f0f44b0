"""The errors derive raises on purpose, and the exit codes they map to.

Every error a user can cause names *what* is wrong and shows the offending *value*;
the command line turns it into one line, ``error: <what> (<value>)``, and exit code 2;
an optional hint follows after a semicolon.
"""

from __future__ import annotations

import unicodedata

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class DeriveError(Exception):
    """Base class for errors that derive reports as one line, without a traceback."""

    exit_code = EXIT_INTERNAL


# An echoed value longer than this is cut to its head and tail: a 100,000-digit number
# would otherwise fill the terminal and hide the message it belongs to.
LONGEST_SHOWN = 60
SHOWN_HEAD = 40
SHOWN_TAIL = 10
# The description may quote what the user typed (a parameter's or a column's name):
# it gets more room, and keeps its end, which says what is wrong.
WHAT_HEAD = 100
WHAT_TAIL = 40


def shown(value: object, head: int = SHOWN_HEAD, tail: int = SHOWN_TAIL) -> str:
    """A value as a message shows it: on one line, and cut to a readable length."""
    text = str(value)
    if len(text) > head + tail + (LONGEST_SHOWN - SHOWN_HEAD - SHOWN_TAIL):
        text = f"{text[:head]}…{text[-tail:]}, {len(text):,} characters"
    return one_line(text)


def one_line(text: str) -> str:
    """Control characters and line breaks written as escapes (\\n, \\x1b, \\u2028), so that
    an error stays one line however odd the input that caused it."""
    return "".join(
        char.encode("unicode_escape").decode("ascii") if breaks_lines(char) else char
        for char in text
    )


def breaks_lines(char: str) -> bool:
    """A control character (newline, escape, ...) or a Unicode line or paragraph separator."""
    return unicodedata.category(char) in {"Cc", "Zl", "Zp"}


class _WhatAndValue(DeriveError):
    exit_code = EXIT_BAD_INPUT

    def __init__(self, what: str, value: object, hint: str | None = None) -> None:
        self.what = what
        self.value = value
        self.hint = hint
        message = f"{shown(what, WHAT_HEAD, WHAT_TAIL)} ({shown(value)})"
        super().__init__(message + (f"; {hint}" if hint else ""))


class InputError(_WhatAndValue, ValueError):
    """Something the user supplied is wrong."""


class OutputError(_WhatAndValue):
    """A report could not be written; earlier files are left as they were."""


class RenderError(DeriveError):
    """A formula or the PDF could not be rendered."""

"""Handouts show their progress as lines when the output is not a terminal."""

from __future__ import annotations

import io

import pytest

from derive.cli.handouts import ProgressBar


@pytest.mark.parametrize("count", [1, 5, 30, 200])
def test_about_one_line_per_tenth_of_the_work(count):
    stream = io.StringIO()
    bar = ProgressBar(count + 2, enabled=False, lines=True, stream=stream)
    for done in range(1, count + 1):
        bar.step("checking", done)
    bar.step("sheets")
    bar.step("keys")
    bar.finish()
    lines = stream.getvalue().splitlines()
    assert 1 <= len(lines) <= 10
    assert len(lines) == 10 or count + 2 < 10
    assert lines[-1].split() == ["100%", f"{count + 2}/{count + 2}", "keys"]
    assert "\r" not in stream.getvalue()  # no bar drawing in a log


def test_quiet_prints_nothing():
    stream = io.StringIO()
    bar = ProgressBar(12, enabled=False, lines=False, stream=stream)
    for done in range(12):
        bar.step("checking", done + 1)
    assert stream.getvalue() == ""

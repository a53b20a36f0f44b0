"""Handouts show their progress as lines when the output is not a terminal."""

from __future__ import annotations

import io

import pytest

from derive.cli.handouts import HandoutProgress, ProgressBar
from derive.handouts.files import parts


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
    assert lines[-1].split() == ["100%", "keys"]
    assert "\r" not in stream.getvalue()  # no bar drawing in a log


@pytest.mark.parametrize(("count", "jobs"), [(1, 2), (5, 2), (30, 2), (200, 2), (200, 1), (37, 8)])
def test_the_parts_cover_every_sheet_once_in_order(count, jobs):
    cut = parts(count, jobs)
    assert [i for part in cut for i in part] == list(range(count))
    assert all(len(part) >= 1 for part in cut)
    assert max(map(len, cut)) - min(map(len, cut)) <= 1  # even parts finish together
    assert len(cut) >= min(count, -(-jobs // 2))  # every worker gets a part


def test_a_large_class_says_every_tenth_while_printing():
    """200 sheets: the printing, most of the work, comes in parts, and the lines follow it,
    about one per tenth, ending at 100 % with the last part printed."""
    stream = io.StringIO()
    count = 200
    bar = ProgressBar(HandoutProgress.total(count), enabled=False, lines=True, stream=stream)
    progress = HandoutProgress(bar, count)
    for done in range(1, count + 1):
        progress.checked(done)
    for part in parts(count, 2):
        for what in ("sheets", "keys"):
            progress.printed_part(what, len(part))
    lines = stream.getvalue().splitlines()
    printing = [line for line in lines if "printed" in line]
    assert 8 <= len(printing) <= 10 and len(lines) <= 11
    assert lines[-1].split()[0] == "100%" and "200/200" in lines[-1]


def test_quiet_prints_nothing():
    stream = io.StringIO()
    bar = ProgressBar(12, enabled=False, lines=False, stream=stream)
    for done in range(12):
        bar.step("checking", done + 1)
    assert stream.getvalue() == ""

"""Input validation below the command line: messages, hints, and the library's own calls."""

from __future__ import annotations

import pytest

from derive.common.errors import LONGEST_SHOWN, SHOWN_HEAD, SHOWN_TAIL, InputError, shown
from derive.problem.datasets import read_csv_text, resolve_dataset
from derive.problem.problem import BUILTIN_DATASETS, make_problem


def _refusal(text: str) -> str:
    with pytest.raises(InputError) as caught:
        read_csv_text(text, "data.csv")
    return str(caught.value)


def test_a_long_value_is_shown_by_its_head_and_tail():
    value = "".join(str(i % 10) for i in range(100_000))
    text = shown(value)
    assert text.startswith(value[:SHOWN_HEAD] + "…" + value[-SHOWN_TAIL:])
    assert f"{len(value):,} characters" in text and len(text) < 2 * LONGEST_SHOWN


def test_a_value_of_readable_length_is_shown_whole():
    value = "7" * LONGEST_SHOWN
    assert shown(value) == value


@pytest.mark.parametrize("char", ["\n", "\r", "\x1b", "\x00", "\u2028", "\x85"])
def test_a_message_stays_one_line_whatever_it_echoes(char):
    message = str(InputError(f"column {char!s} odd", f"a{char}b"))
    assert len(message.splitlines()) == 1 and char not in message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("x;y\n1,5;2,5\n", "write 1.5 with a decimal point"),
        ('x,y\n"2,25",1\n', "write 2.25 with a decimal point"),
        ("x\ty\n1\t-3,5e2\n", "write -3.5e2 with a decimal point"),
        ("x,y\n1,5,2,5\n", "write them with decimal points"),
    ],
)
def test_decimal_commas_get_a_hint(text, hint):
    assert hint in _refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "x,y\n1,2,3\n",  # one field too many: no decimal comma in sight
        "x,y\n1,a,2,b\n",
        "x;y\n1;oops\n",
        "x;y\n1;1,2,3\n",
    ],
)
def test_no_decimal_comma_hint_where_none_fits(text):
    assert "decimal" not in _refusal(text)


def test_a_repeated_column_name_is_refused_only_where_it_is_used():
    assert "appears 2 times" in _refusal("x,y,y\n1,2,3\n")
    dataset = read_csv_text("note,x,note,y\na,1,b,2\n", "data.csv")
    assert dataset.x == (1.0,) and dataset.y == (2.0,)


def test_the_first_bad_row_is_named_whatever_is_wrong_with_it():
    assert "line 2" in _refusal("x,y\n1\n2,3,4\n")  # short first, then too wide
    assert "line 2" in _refusal("x,y\n2,3,4\n1\n")


def test_inline_data_and_a_data_set_together_are_refused():
    with pytest.raises(InputError, match="--data cannot be combined"):
        resolve_dataset("seed", (1.0,), (2.0,))
    inline = resolve_dataset(None, (1.0,), (2.0,))
    assert inline.x == (1.0,) and inline.y == (2.0,)
    assert resolve_dataset(None) == BUILTIN_DATASETS["seed"]


def test_pinning_no_values_is_refused_not_random():
    with pytest.raises(InputError, match="missing"):
        make_problem(BUILTIN_DATASETS["seed"], init={})


def test_a_refused_sample_is_named_by_its_position_and_shows_its_value():
    data = BUILTIN_DATASETS["seed"]
    big = 1e39
    bad = type(data)("big", (1.0, big), (1.0, 2.0), "test")
    with pytest.raises(InputError) as caught:
        make_problem(bad)
    assert str(caught.value) == f"x of sample 2 overflows float32 ({big!r})"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_a_plain_file_never_takes_the_careful_path(monkeypatch, delimiter):
    """The checks above cost nothing per line on a plain file: NumPy reads it whole."""
    import derive.problem.datasets as datasets

    def careful(*args, **kwargs):
        raise AssertionError("a plain file was read line by line")

    monkeypatch.setattr(datasets, "_parse_carefully", careful)
    monkeypatch.setattr(datasets, "_read_cells", careful)
    rows = [(i, 2 * i + 0.5) for i in range(1000)]
    text = f"x{delimiter}y\n" + "".join(f"{x}{delimiter}{y}\n" for x, y in rows)
    dataset = read_csv_text(text, "data.csv")
    assert dataset.x == tuple(float(x) for x, _ in rows)
    assert dataset.y == tuple(y for _, y in rows)

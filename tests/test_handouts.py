"""Handouts: reproducible sheets, keys checked against the tape, one page each, bad input."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from derive.__main__ import main
from derive.handout_files import document_html, file_names, index_html, render_set
from derive.handouts import (
    MAX_SAMPLES,
    build_handouts,
    check_key,
    read_roster,
    sheet_seed,
)
from derive.mathhtml import latex_to_html
from tests.emulated_tape import emulated_tape

KOREAN = "김민준"
ROOT = Path(__file__).resolve().parent.parent


def _numbers(sheet):
    return (sheet.problem.dataset.x, sheet.problem.dataset.y, tuple(sheet.init_given.values()))


@pytest.fixture(scope="module")
def symbolic():
    from derive.models import get_loss, get_model
    from derive.symbolic import build_symbolic

    return build_symbolic(get_model("linear"), get_loss("mse"))


@pytest.fixture(scope="module")
def handouts():
    return build_handouts(4, class_seed=11, tape=emulated_tape)


def test_building_and_rendering_on_the_emulation_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from derive.handouts import build_handouts\n"
        "from derive.handout_files import document_html\n"
        "from tests.emulated_tape import emulated_tape\n"
        "document_html(build_handouts(1, tape=emulated_tape), True)\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_same_seed_same_sheets(handouts):
    again = build_handouts(4, class_seed=11, tape=emulated_tape)
    assert again == handouts


def test_different_indices_and_seeds_give_different_numbers(handouts):
    numbers = [_numbers(sheet) for sheet in handouts.sheets]
    assert len(set(numbers)) == len(numbers)
    other = build_handouts(4, class_seed=12, tape=emulated_tape)
    assert [_numbers(s) for s in other.sheets] != numbers
    assert len({sheet.spec.identifier for sheet in handouts.sheets}) == 4


def test_seeds_are_stable_across_processes():
    # sha256, not Python's salted hash(): the same in every run and on every machine.
    assert sheet_seed(7, 1, None) == 717325948482876565
    assert sheet_seed(7, 1, KOREAN) != sheet_seed(8, 1, KOREAN)


def test_a_students_numbers_follow_the_name_and_namesakes_differ():
    from derive.handouts import specs

    forward = specs(7, 0, ["Ada", KOREAN, "Ada"])
    backward = specs(7, 0, [KOREAN, "Ada"])
    assert forward[1].seed == backward[0].seed and forward[0].seed == backward[1].seed
    assert forward[0].seed != forward[2].seed


def test_values_are_sensibly_rounded(handouts):
    for sheet in handouts.sheets:
        assert len(sheet.problem.x) == 2
        for value in (*sheet.problem.dataset.x, *sheet.problem.dataset.y):
            assert round(value, 1) == value and 0 < value <= 5
        for value in sheet.init_given.values():
            assert round(value, 2) == value and 0 < value < 1


def test_every_key_agrees_with_the_emulated_tape(handouts):
    assert handouts.ok
    for sheet in handouts.sheets:
        assert [k.check.quantity for k in sheet.checks] == ["L", "dL/dW", "dL/db", "W1", "b1"]


def test_key_values_are_the_hand_calculation(handouts):
    sheet = handouts.sheets[0]
    values = sheet.hand
    w, b = sheet.init_given["W"], sheet.init_given["b"]
    for work in values.samples:
        residual = w * work.x + b - work.y
        assert float(work.residual) == pytest.approx(residual, rel=1e-6, abs=1e-6)
        assert float(work.shares["W"]) == pytest.approx(2 * residual * work.x, abs=1e-5)
    assert values.updated["W"] == Fraction(str(w)) - Fraction(1, 100) * values.gradients["W"]


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda v: replace(v, gradients={**v.gradients, "W": v.gradients["W"] + Fraction(1, 1000)}),
        lambda v: replace(v, loss=v.loss * Fraction(1001, 1000)),
        lambda v: replace(
            v,
            samples=(
                replace(v.samples[0], shares={**v.samples[0].shares, "b": Fraction(1)}),
                *v.samples[1:],
            ),
        ),
        lambda v: replace(v, updated={**v.updated, "b": v.updated["b"] + Fraction(1, 10**6)}),
    ],
    ids=["gradient", "loss", "one share", "sgd step"],
)
@pytest.mark.parametrize("which", ["values", "hand"])
def test_a_corrupted_key_value_fails_the_check(symbolic, handouts, corrupt, which):
    sheet = handouts.sheets[0]
    tape = emulated_tape(sheet.problem)
    assert all(entry.ok for entry in check_key(symbolic, sheet, tape))
    broken = replace(sheet, **{which: corrupt(getattr(sheet, which))})
    assert not all(entry.ok for entry in check_key(symbolic, broken, tape))


def test_roster_names_with_korean_are_printed_escaped(tmp_path):
    roster = tmp_path / "class.csv"
    roster.write_text(f"name,id\n{KOREAN},1\n<b>Ada</b>,2\n", encoding="utf-8")
    names = read_roster(roster)
    assert names == [KOREAN, "<b>Ada</b>"]
    class_set = build_handouts(0, roster=names, tape=emulated_tape, lang="ko")
    html = document_html(class_set, filled=False)
    assert KOREAN in html and "&lt;b&gt;Ada&lt;/b&gt;" in html and "<b>Ada" not in html
    index = index_html(class_set, file_names(class_set))
    assert KOREAN in index and "&lt;b&gt;Ada" in index
    assert '<html lang="ko">' in html


def test_html_of_the_sheets_is_self_contained(handouts):
    html = document_html(handouts, filled=True)
    assert "<script" not in html and "url(" not in html and "@import" not in html
    assert "src=" not in html


def test_short_formulas_as_html_and_anything_else_refused():
    assert (
        latex_to_html(r"r_{1}^{2} =") == '<span class="m"><i>r</i><sub>1</sub><sup>2</sup> =</span>'
    )
    assert "\u2212" in latex_to_html(r"\left({-0.5}\right)")
    with pytest.raises(ValueError):
        latex_to_html(r"\sqrt{2}")


@pytest.mark.render
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_each_sheet_and_key_is_one_page_and_reproducible(lang):
    roster = [KOREAN * 6, "Ada"]  # a long name must not push anything onto a second page
    class_set = build_handouts(0, roster=roster, samples=MAX_SAMPLES, tape=emulated_tape, lang=lang)
    for filled in (False, True):
        whole, pages = render_set(class_set, filled)  # raises unless one page each
        assert len(pages) == 2 and all(page.startswith(b"%PDF") for page in pages)
        assert render_set(class_set, filled) == (whole, pages)


@pytest.mark.render
def test_the_command_writes_every_file_twice_the_same(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("derive.tape.gradient_at", emulated_tape)
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert main(["handouts", "--count", "2", "--seed", "3", "--out", str(out)]) == 0
    names = sorted(p.name for p in first.iterdir())
    assert len(names) == 2 + 2 + 3 and "index.html" in names and "keys.pdf" in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert "every key agrees with the tape" in capsys.readouterr().out


BAD_HANDOUTS = [
    (["--count", "0"], "--count must be at least 1", "0"),
    (["--samples", "0"], "--samples must be at least 1", "0"),
    (["--samples", str(MAX_SAMPLES + 1)], "to fit one page", str(MAX_SAMPLES + 1)),
    (["--data", "tf-examples"], "to fit one page", "17"),
    (["--lang", "fr"], "unknown language; choose en or ko", "fr"),
    (["--roster", "missing.csv"], "roster file not found", "missing.csv"),
    (["--count", "x"], "invalid command line", "invalid int value"),
]


@pytest.mark.parametrize(("arguments", "what", "value"), BAD_HANDOUTS)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, arguments, what, value):
    code = main(["handouts", "--out", str(tmp_path / "out"), *arguments])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert what in lines[0] and value in lines[0], lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_roster_without_a_name_column_is_bad_input(tmp_path, capsys):
    roster = tmp_path / "class.csv"
    roster.write_text("student,id\nAda,1\n", encoding="utf-8")
    code = main(["handouts", "--roster", str(roster), "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert "roster has no 'name' column" in lines[0] and "student, id" in lines[0]


@pytest.mark.tensorflow
def test_every_key_agrees_with_the_real_tape():
    class_set = build_handouts(6, class_seed=5, samples=MAX_SAMPLES)
    assert class_set.ok, [
        (sheet.spec.identifier, [k.check.quantity for k in sheet.checks if not k.ok])
        for sheet in class_set.sheets
    ]


def test_given_data_is_on_every_sheet_with_its_own_initial_values():
    from derive.problem import BUILTIN_DATASETS

    class_set = build_handouts(3, dataset=BUILTIN_DATASETS["seed"], tape=emulated_tape)
    assert {sheet.problem.dataset.x for sheet in class_set.sheets} == {(3.3, 1.0)}
    assert len({tuple(sheet.init_given.values()) for sheet in class_set.sheets}) == 3
    assert class_set.ok


@pytest.mark.render
def test_no_progress_bar_when_not_on_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("derive.tape.gradient_at", emulated_tape)
    assert main(["handouts", "--count", "1", "--out", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert "[#" not in output and "\r" not in output

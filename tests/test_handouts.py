"""Handouts: reproducible sheets, keys checked against the tape, one page each, bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from derive.cli.main import main
from derive.handouts.draw import sheet_seed
from derive.handouts.facts import MAX_SAMPLES
from derive.handouts.files import document_html, file_names, index_html, render_set
from derive.handouts.keys import check_key
from derive.handouts.roster import read_roster
from derive.handouts.sheets import build_handouts
from derive.render.mathhtml import latex_to_html
from tests.emulated_tape import emulated_tape

KOREAN = "김민준"
ROOT = Path(__file__).resolve().parent.parent


def _numbers(sheet):
    return (sheet.problem.dataset.x, sheet.problem.dataset.y, tuple(sheet.init_given.values()))


@pytest.fixture(scope="module")
def symbolic():
    from derive.models.registry import get_loss, get_model
    from derive.symbolic.derivation import build_symbolic

    return build_symbolic(get_model("linear"), get_loss("mse"))


@pytest.fixture(scope="module")
def handouts():
    return build_handouts(4, class_seed=11, tape=emulated_tape)


def test_building_and_rendering_on_the_emulation_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from derive.handouts.sheets import build_handouts\n"
        "from derive.handouts.files import document_html\n"
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
    from derive.handouts.draw import specs

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
        residual = w * work.x[0] + b - work.y
        assert float(work.residual) == pytest.approx(residual, rel=1e-6, abs=1e-6)
        assert float(work.shares["W"]) == pytest.approx(2 * residual * work.x[0], abs=1e-5)
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
        printed = render_set(class_set, filled)  # raises unless one page each
        assert len(printed.pages) == 2 and all(page.startswith(b"%PDF") for page in printed.pages)
        assert render_set(class_set, filled) == printed


@pytest.mark.render
def test_the_command_writes_every_file_twice_the_same(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("derive.tape.gradient.gradient_at", emulated_tape)
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert main(["handouts", "--count", "2", "--seed", "3", "--out", str(out)]) == 0
    names = sorted(p.name for p in first.iterdir())
    assert len(names) == 2 + 2 + 3 and "index.html" in names and "keys.pdf" in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert "every key agrees with the tape" in capsys.readouterr().out


@pytest.mark.render
def test_the_files_do_not_depend_on_how_many_processes_print_them(tmp_path, monkeypatch):
    """Printed in one part or in three, the sheets and keys are the same pages: the same
    text, one sheet each, in the class's order; each page file is its own PDF."""
    from pypdf import PdfReader

    monkeypatch.setattr("derive.tape.gradient.gradient_at", emulated_tape)
    outs = {jobs: tmp_path / f"jobs{jobs}" for jobs in (1, 6)}
    for jobs, out in outs.items():
        arguments = ["handouts", "--count", "5", "--seed", "4", "--jobs", str(jobs)]
        assert main([*arguments, "--out", str(out), "--quiet"]) == 0

    def texts(path):  # type: ignore[no-untyped-def]
        return [page.extract_text() for page in PdfReader(path).pages]

    one, three = outs[1], outs[6]
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in three.iterdir())
    for name in ("sheets.pdf", "keys.pdf"):
        pages = texts(one / name)
        assert len(pages) == 5 and texts(three / name) == pages
    for path in sorted(one.glob("sheet-*.pdf")) + sorted(one.glob("key-*.pdf")):
        (page,) = texts(path)
        assert texts(three / path.name) == [page]
        assert path.stem.split("-", 1)[1] in page  # the sheet's identifier is on its page


BAD_HANDOUTS = [
    (["--count", "0"], "--count must be at least 1", "0"),
    (["--samples", "0"], "--samples must be at least 1", "0"),
    (["--samples", str(MAX_SAMPLES + 1)], "to fit one page", str(MAX_SAMPLES + 1)),
    (["--data", "tf-examples"], "to fit one page", "17"),
    (["--lang", "fr"], "unknown language; choose en or ko", "fr"),
    (["--roster", "missing.csv"], "roster file not found", "missing.csv"),
    (["--roster", "class.csv", "--count", "3"], "--count cannot be used with --roster", "3"),
    (["--columns", "a,b"], "--columns needs --data", "a,b"),
    (["--data", "seed", "--columns", "a"], "--columns expects", "a"),
    (["--count", "x"], "invalid command line", "invalid int value"),
    (["--jobs", "0"], "--jobs must be at least 1", "0"),
    (["--jobs", "two"], "invalid command line", "invalid int value"),
    (["--loss", "l1"], "unknown --loss; choose mse, mae, huber", "l1"),
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
    from derive.problem.problem import BUILTIN_DATASETS

    # A pinned class seed: unseeded, two of the three sheets can draw the same W and b.
    class_set = build_handouts(
        3, dataset=BUILTIN_DATASETS["seed"], class_seed=7, tape=emulated_tape
    )
    assert {sheet.problem.dataset.x for sheet in class_set.sheets} == {(3.3, 1.0)}
    assert len({tuple(sheet.init_given.values()) for sheet in class_set.sheets}) == 3
    assert class_set.ok


@pytest.mark.render
def test_no_progress_bar_when_not_on_a_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("derive.tape.gradient.gradient_at", emulated_tape)
    assert main(["handouts", "--count", "1", "--out", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert "[#" not in output and "\r" not in output


def test_without_a_seed_one_is_drawn_and_recorded_in_the_index(monkeypatch):
    monkeypatch.setattr("derive.handouts.sheets.draw_seed", lambda: 424242)
    drawn = build_handouts(1, tape=emulated_tape)
    assert drawn.class_seed == 424242
    assert "--seed 424242" in index_html(drawn, file_names(drawn))
    assert build_handouts(1, class_seed=424242, tape=emulated_tape) == drawn


def test_classes_without_a_seed_get_different_sheets():
    first, second = (build_handouts(1, tape=emulated_tape) for _ in range(2))
    assert first.class_seed != second.class_seed
    assert _numbers(first.sheets[0]) != _numbers(second.sheets[0])


def test_the_identifier_changes_with_everything_that_decides_the_numbers():
    from derive.problem.problem import BUILTIN_DATASETS, Dataset

    other = Dataset("other", (3.3, 1.5), (1.7, 2.0), "test")
    variants = [
        build_handouts(1, class_seed=3, samples=2, tape=emulated_tape),
        build_handouts(1, class_seed=3, samples=3, tape=emulated_tape),
        build_handouts(1, class_seed=3, dataset=BUILTIN_DATASETS["seed"], tape=emulated_tape),
        build_handouts(1, class_seed=3, dataset=other, tape=emulated_tape),
    ]
    sheets = [variant.sheets[0] for variant in variants]
    assert len({_numbers(sheet) for sheet in sheets}) == len(sheets)
    assert len({sheet.spec.identifier for sheet in sheets}) == len(sheets)
    for sheet in sheets:
        assert re.fullmatch(r"3-01-[0-9A-F]{4}", sheet.spec.identifier)
    renamed = replace(other, name="renamed", source="elsewhere")
    again = build_handouts(1, class_seed=3, dataset=renamed, tape=emulated_tape)
    assert again.sheets[0].spec.identifier == sheets[3].spec.identifier  # same numbers


BOX = re.compile(r'<span class="box">([^<]*)</span>')
PRINTED_CELL = re.compile(r"<tr><td>[^<]*</td><td class=\"num\">([^<]*)</td>")


def test_the_key_table_prints_each_value_as_its_box(handouts):
    html = document_html(handouts, filled=True)
    pages = html.split('<section class="page')[1:]
    assert len(pages) == len(handouts.sheets)
    for page, sheet in zip(pages, handouts.sheets, strict=True):
        boxes = set(BOX.findall(page))
        printed = PRINTED_CELL.findall(page)
        assert len(printed) == len(sheet.checks)
        assert set(printed) <= boxes, (printed, boxes)


def test_a_name_on_several_rows_is_found_with_its_rows(tmp_path):
    from derive.handouts.roster import read_roster_entries, repeated_names

    roster = tmp_path / "class.csv"
    roster.write_text("name\nAda\nBo\n\nAda\nBo \nCy\n", encoding="utf-8")
    entries = read_roster_entries(roster)
    assert repeated_names(entries) == {"Ada": (2, 5), "Bo": (3, 6)}


def test_a_long_name_is_shortened_but_still_decides_the_numbers():
    from derive.handouts.draw import specs
    from derive.handouts.roster import MAX_NAME_LENGTH, printed_name

    long_name = "Bartholomew " * 25
    spec, other = specs(7, 0, [long_name, long_name[:-1] + "x"])
    assert spec.printed_name == printed_name(long_name)
    assert len(spec.printed_name) <= MAX_NAME_LENGTH and spec.printed_name.endswith("\u2026")
    assert long_name.startswith(spec.printed_name[:-1])
    assert spec.seed != other.seed
    assert printed_name("Ada") == "Ada"


def test_characters_without_a_glyph_are_printed_as_their_codes(handouts):
    from derive.handouts.roster import printed_name, without_unprintable

    assert printed_name("Zo\u00eb \U0001f389", frozenset("\U0001f389")) == "Zo\u00eb U+1F389"
    class_set = build_handouts(0, roster=["Zo\u00eb \U0001f389", "Ada"], tape=emulated_tape)
    fixed = without_unprintable(class_set, frozenset("\U0001f389"))
    html = document_html(fixed, filled=False)
    assert "Zo\u00eb U+1F389" in html and "\U0001f389" not in html
    assert [s.spec.seed for s in fixed.sheets] == [s.spec.seed for s in class_set.sheets]


@pytest.mark.render
def test_the_printer_finds_the_characters_no_font_has():
    from derive.handouts.files import unprintable_characters

    # U+0378 is unassigned: no font has it on any machine (an emoji may have one).
    assert unprintable_characters(["Zo\u00eb\u0378", KOREAN, "Ada"]) == frozenset("\u0378")
    assert unprintable_characters([KOREAN, "Ada", "Zo\u00eb"]) == frozenset()


def test_one_sheet_and_one_sample_are_singular_in_both_languages():
    for lang, words in (("en", ("1 exercise sheet with 1 sample,", "n = 1 sample<")),
                        ("ko", ("샘플 1개짜리 연습 문제지 1장", "n = 1개"))):  # fmt: skip
        class_set = build_handouts(1, class_seed=2, samples=1, tape=emulated_tape, lang=lang)
        text = index_html(class_set, file_names(class_set)) + document_html(class_set, False)
        for word in words:
            assert word in text, (lang, word)
    many = build_handouts(2, class_seed=2, tape=emulated_tape)
    assert "2 exercise sheets with 2 samples each" in index_html(many, file_names(many))


def test_sheet_numbers_are_padded_to_the_width_of_the_count():
    from types import SimpleNamespace

    from derive.handouts.draw import specs

    class_specs = specs(7, 200)
    assert class_specs[6].number == "007" and class_specs[6].identifier.startswith("7-007-")
    names = file_names(SimpleNamespace(sheets=[SimpleNamespace(spec=s) for s in class_specs]))
    assert sorted(names.sheet) == list(names.sheet) and sorted(names.key) == list(names.key)
    assert specs(7, 9)[0].number == "01"


def test_handouts_read_the_csv_columns_given(tmp_path):
    from derive.cli.handouts import _dataset
    from derive.cli.parser import build_parser

    data = tmp_path / "points.csv"
    data.write_text("hours,score\n1.5,2.5\n3.0,4.0\n", encoding="utf-8")
    arguments = ["handouts", "--data", str(data), "--columns", "hours,score", "--samples", "1"]
    dataset = _dataset(build_parser().parse_args(arguments))
    assert (dataset.x, dataset.y) == ((1.5,), (2.5,))


def _overflowing_boxes(html: str) -> list[str]:
    """Text that the layout puts beyond the right edge of the page's content area."""
    from derive.render.pdf import font_face_css, load_weasyprint, make_fetcher

    weasyprint = load_weasyprint()
    fetcher = make_fetcher()
    document = weasyprint.HTML(string=html, url_fetcher=fetcher).render(
        stylesheets=[weasyprint.CSS(string=font_face_css(), url_fetcher=fetcher)]
    )
    found = []
    for page in document.pages:
        box = page._page_box
        right = box.content_box_x() + box.width
        for inner in box.descendants():
            if getattr(inner, "text", None) and inner.position_x + inner.width > right + 0.5:
                found.append(inner.text[:20])
    return found


@pytest.mark.render
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_very_long_name_fits_the_page(lang):
    roster = ["W" * 300, KOREAN * 100, "Bartholomew " * 25]
    class_set = build_handouts(0, roster=roster, samples=MAX_SAMPLES, tape=emulated_tape, lang=lang)
    # The key is the fuller page; the sheet's header is the same.
    render_set(class_set, filled=True)  # raises unless one page each
    assert _overflowing_boxes(document_html(class_set, filled=True)) == []


@pytest.mark.render
def test_the_command_warns_in_its_own_words(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr("derive.tape.gradient.gradient_at", emulated_tape)
    roster = tmp_path / "class.csv"
    roster.write_text("name\nAda\nZo\u00eb\u0378\nAda\n", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["handouts", "--roster", str(roster), "--seed", "1", "--out", str(out)]) == 0
    captured = capfd.readouterr()
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2, warnings
    assert "'Ada'" in warnings[0] and "rows 2, 4" in warnings[0]
    assert "U+0378" in warnings[1] and "Zo\u00eb" in warnings[1]
    assert all(line.startswith("warning: ") for line in warnings)
    assert "3 sheets, 3 keys" in captured.out
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "--seed 1" in index


@pytest.mark.render
def test_the_command_says_the_drawn_seed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("derive.tape.gradient.gradient_at", emulated_tape)
    monkeypatch.setattr("derive.problem.problem.draw_seed", lambda: 424242)
    assert main(["handouts", "--count", "1", "--out", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert "--seed 424242" in output and "1 sheet, 1 key," in output
    assert "--seed 424242" in (tmp_path / "index.html").read_text(encoding="utf-8")

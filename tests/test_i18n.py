"""Languages: catalogues with the same keys and fields, Korean reports, the Korean font."""

from __future__ import annotations

import re

import pytest

from derive.common.errors import InputError
from derive.common.i18n import Message, catalogue, fields_of, languages, translator
from derive.problem.problem import BUILTIN_DATASETS, make_problem
from derive.render.fonts import CJK_BOLD_PACKAGE, cjk_font
from derive.render.outputs import to_html, to_pdf
from derive.render.pdf import make_fetcher
from derive.report.build import explain
from tests.conftest import SINGLE_INIT
from tests.emulated_tape import emulated_tape

HANGUL = re.compile("[\uac00-\ud7af]")


def _font_names(pdf: bytes) -> str:
    """The PDF's objects, inflated, to find the embedded fonts' names in."""
    import zlib

    texts = [pdf.decode("latin-1")]
    for match in re.finditer(rb"stream\r?\n", pdf):
        try:
            texts.append(zlib.decompressobj().decompress(pdf[match.end() :]).decode("latin-1"))
        except zlib.error:
            continue
    return "\n".join(re.findall(r"/BaseFont\s*/(\S+)", "\n".join(texts)))


@pytest.fixture(scope="module")
def report():
    problem = make_problem(BUILTIN_DATASETS["seed"], init=SINGLE_INIT)
    return explain(problem, tape=emulated_tape, backward=False)


def test_both_languages_are_there():
    assert {"en", "ko"} <= set(languages())


@pytest.mark.parametrize("lang", [lang for lang in languages() if lang != "en"])
def test_every_language_has_the_same_keys_and_fields(lang):
    english, other = catalogue("en"), catalogue(lang)
    assert sorted(other) == sorted(english)
    for key, text in english.items():
        assert fields_of(other[key]) == fields_of(text), key


def test_unknown_language_is_bad_input():
    with pytest.raises(InputError) as caught:
        translator("fr")
    assert str(caught.value).startswith("unknown language; choose en or ko")
    assert "fr" in str(caught.value)


def test_fields_are_escaped_and_markup_is_kept():
    t = translator("en")
    text = t("report.page_title", name="<b>x</b>")
    assert "&lt;b&gt;" in text and "<b>" not in text
    assert "<code>" in t("report.heading")


def test_messages_read_as_english_text():
    message = Message.of("failure.sums_differ_wrong", quantities="dL/dW", kind="drop-factor-2")
    assert str(message) == (
        "the sum of the tape's adjoints for dL/dW differs from the wrong formula "
        "(drop-factor-2) used on purpose, as it should: the tape computes the true gradient"
    )
    assert "dL/dW" in translator("ko").text(message)


def test_korean_report_is_korean(report):
    html = to_html(report, "ko")
    assert '<html lang="ko">' in html
    assert HANGUL.search(html)
    body = re.sub(r"<svg.*?</svg>|<style>.*?</style>", "", html, flags=re.S)
    for english in ("The problem", "Each sample's share", "checked by SymPy", "pass<"):
        assert english not in body
    # The HTML stays self-contained: the font is named, never loaded.
    assert "url(" not in html and "@font-face" not in html
    # No English word drawn inside a formula (the SVGs carry their LaTeX as a title),
    # and Korean lines break between words.
    assert "\\text{tape}" not in html and "\\text{exact}" not in html
    assert "word-break: keep-all" in html
    from derive.render.pdf import keep_korean_words

    assert keep_korean_words("<p>학습률 W</p>") == "<p>학\u2060습\u2060률 W</p>"


def test_english_report_has_no_hangul(report):
    html = to_html(report, "en")
    assert '<html lang="en">' in html and not HANGUL.search(html)


@pytest.mark.render
def test_korean_pdf_loads_and_embeds_the_font_only(report):
    assert cjk_font() is not None, "install cvttf-notosanscjk-regular (see README)"
    fetcher = make_fetcher()
    pdf = to_pdf(to_html(report, "ko"), fetcher)
    bold = cjk_font(CJK_BOLD_PACKAGE)  # a dependency: headings and verdicts in bold Hangul
    assert bold is not None, "install cvttf-notosanscjk-bold (a dependency)"
    assert fetcher.fetched == [cjk_font().as_uri(), bold.as_uri()]
    assert fetcher.refused == []
    assert "Noto-Sans-CJK" in _font_names(pdf)
    assert to_pdf(to_html(report, "ko")) == pdf  # the font subset is deterministic


@pytest.mark.render
def test_other_local_files_are_still_refused():
    fetcher = make_fetcher()
    html = (
        "<html><body><p>한국어</p>"
        f'<img src="{cjk_font().parent.as_uri()}/__init__.py">'
        '<link rel="attachment" href="file:///etc/passwd"></body></html>'
    )
    pdf = to_pdf(html, fetcher)
    assert b"root:" not in pdf and b"get_TTF_path" not in pdf
    assert any(url.endswith("__init__.py") for url in fetcher.refused)
    assert "file:///etc/passwd" in fetcher.refused


@pytest.mark.render
def test_english_pdf_does_not_load_the_font(report):
    fetcher = make_fetcher()
    to_pdf(to_html(report, "en"), fetcher)
    assert fetcher.fetched == []


@pytest.mark.tensorflow
def test_training_plots_speak_the_reports_language():
    from derive.problem.problem import BUILTIN_DATASETS, Training, make_problem
    from derive.render.outputs import to_html
    from derive.report.build import explain

    problem = make_problem(
        BUILTIN_DATASETS["seed"], init={"W": 0.2, "b": 0.7}, training=Training(steps=20)
    )
    report = explain(problem, backward=False)
    korean, english = to_html(report, "ko"), to_html(report, "en")
    assert "단계별 손실" in korean and "Loss at each step" not in korean
    assert "Loss at each step" in english


def test_korean_training_section_has_no_english_glue():
    """The engine, an update's name and the node in the graph's caption are in Korean."""
    from derive.problem.problem import Training
    from derive.report.build import formulas_for, symbolic_for
    from derive.report.training import reference_trace

    t = translator("ko")
    assert t.quantity("W (update)") == "W (갱신)" and t.quantity("dL/dW") == "dL/dW"
    problem = make_problem(
        BUILTIN_DATASETS["seed"], init=SINGLE_INIT, training=Training(4, 0.01, 2)
    )
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic))
    html = to_html(explain(problem, None, trace), "ko")
    assert "(으)로" not in html and "(update)" not in html
    assert "no TensorFlow" not in html and "TensorFlow 없음" in html
    assert 'aria-label="\\frac{\\partial L}{\\partial \\text{v}}"' in html

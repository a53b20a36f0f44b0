"""Rendering: self-contained HTML, math that renders, JSON that meets its schema, safe PDF."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from importlib import resources

import jsonschema
import pytest

from derive.common.errors import RenderError
from derive.problem.problem import BUILTIN_DATASETS, make_problem
from derive.render.glyphs import plain_paths
from derive.render.jsonfile import to_json
from derive.render.mathsvg import latex_to_svg
from derive.render.notebook import to_notebook_html as report_html_in_jupyter
from derive.render.outputs import to_html
from derive.render.pdf import make_fetcher, to_pdf
from derive.report.build import explain
from tests.conftest import SINGLE_INIT, init_for
from tests.emulated_tape import emulated_tape


@pytest.fixture(scope="module", params=sorted(BUILTIN_DATASETS))
def report(request):
    problem = make_problem(
        BUILTIN_DATASETS[request.param], init=init_for(BUILTIN_DATASETS[request.param])
    )
    return explain(problem, tape=emulated_tape, backward=False)


@pytest.fixture(scope="module")
def schema():
    return json.loads((resources.files("derive") / "schema" / "report.schema.json").read_text())


def test_html_is_self_contained(report):
    html = to_html(report)
    assert "<script" not in html.lower()
    # Nothing to load: no src, no href but to a glyph of the page (derive.render.glyphs),
    # no url() in the CSS, no @import.
    assert not re.search(r"\bsrc\s*=", html, re.I)
    assert not re.search(r'\bhref\s*=\s*"(?!#(g\d+|a[0-9a-f]{10})")', html, re.I)
    assert "url(" not in html and "@import" not in html
    assert "<svg" in html and 'role="img"' in html


def test_formulas_carry_alt_text_and_baseline_alignment():
    svg = latex_to_svg(r"\frac{\partial L}{\partial W}")
    assert 'aria-label="\\frac{\\partial L}{\\partial W}"' in svg
    assert "<title" in svg
    depth = float(re.search(r"vertical-align:(-?[\d.]+)em", svg).group(1))
    assert depth < 0  # the fraction reaches below the baseline


def test_unknown_latex_is_an_error_not_literal_text():
    with pytest.raises(RenderError, match="unknown LaTeX command"):
        latex_to_svg(r"\notacommand{x}")


def test_json_meets_its_schema(report, schema):
    document = json.loads(to_json(report))
    jsonschema.validate(document, schema)
    assert document["problem"]["n"] == len(document["problem"]["x"])
    parameters = document["problem"]["parameters"]
    assert list(document["initial"]["gradients"]) == parameters
    assert all(document["initial"]["gradients"][name]["ok"] is True for name in parameters)
    if document["training"] is not None:
        assert set(parameters) <= set(document["training"]["final"])


def test_user_text_is_escaped():
    dataset = BUILTIN_DATASETS["seed"]
    problem = make_problem(dataset, init=SINGLE_INIT, name='<script>alert("x")</script>')
    html = to_html(explain(problem, tape=emulated_tape, backward=False))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.render
def test_pdf_fetches_nothing():
    html = (
        "<html><body><p>x</p>"
        '<img src="http://example.invalid/a.png">'
        '<link rel="attachment" href="file:///etc/passwd">'
        '<img src="file:///etc/hostname"></body></html>'
    )
    fetcher = make_fetcher()
    pdf = to_pdf(html, fetcher)
    assert pdf.startswith(b"%PDF")
    assert b"root:" not in pdf
    assert any(url.startswith("http://") for url in fetcher.refused)
    assert any(url.startswith("file://") for url in fetcher.refused)


@pytest.mark.render
def test_pdf_of_a_report_stays_within_the_page(report):
    from derive.render.pdf import load_weasyprint

    weasyprint = load_weasyprint()
    html = to_html(report)
    assert to_pdf(html).startswith(b"%PDF")
    document = weasyprint.HTML(string=html, url_fetcher=make_fetcher()).render()
    # each feature beyond the first adds a derivation and wider tables: up to two pages
    assert 2 <= len(document.pages) <= 8 + 2 * (len(report.problem.features) - 1)
    for page in document.pages:
        right_edge = page.width - page._page_box.margin_right
        for box in _descendants(page._page_box):
            # Nothing may reach into the right margin: no formula or table cut at the edge.
            assert box.position_x + box.margin_width() <= right_edge + 0.5, box


def _descendants(box):
    for child in getattr(box, "children", ()):
        yield child
        yield from _descendants(child)


def test_column_names_from_a_csv_are_escaped(tmp_path):
    from derive.problem.datasets import read_csv

    path = tmp_path / "evil.csv"
    path.write_text('<script>alert(1)</script>,"quoted ""name"""\n1,2\n3,4\n', encoding="utf-8")
    dataset = read_csv(str(path), ("<script>alert(1)</script>", 'quoted "name"'))
    problem = make_problem(dataset, init=SINGLE_INIT)
    html = to_html(explain(problem, tape=emulated_tape, backward=False))
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "quoted &#34;name&#34;" in html


def test_report_shows_itself_in_jupyter():
    problem = make_problem(BUILTIN_DATASETS["single"], init=SINGLE_INIT)
    report = explain(problem, tape=emulated_tape, backward=False)
    html = report._repr_html_()
    assert html.startswith('<div class="derive-report"') and "<svg" in html


def test_large_json_with_samples_encoded_beforehand_is_the_same_document(monkeypatch):
    """Beyond PRETTY_LIMIT samples the arrays are spliced in as encoded earlier."""
    from derive.render import jsonfile as jsonout

    monkeypatch.setattr(jsonout, "PRETTY_LIMIT", 1)
    problem = make_problem(BUILTIN_DATASETS["tf-examples"], init={"W": 0.5, "b": -0.25})
    report = explain(problem, tape=emulated_tape, backward=False)
    direct = jsonout.to_json(report)
    early = jsonout.to_json(report, jsonout.EncodedSamples.of(report.problem))
    assert direct == early
    # The training process encodes them from the Problem it holds: the same text.
    assert jsonout.EncodedSamples.of_problem(problem) == jsonout.EncodedSamples.of(report.problem)
    assert json.loads(direct) == report.to_dict()  # the same content as the plain encoding
    assert "\n" not in direct.rstrip("\n")  # compact


def test_weasyprints_notice_about_harfbuzz_subset_is_not_an_error(tmp_path, monkeypatch):
    """Without Debian's libharfbuzz-subset0, importing WeasyPrint warns about its future;
    the tests turn warnings into errors, and so would any caller doing the same."""
    from derive.render.pdf import load_weasyprint

    fake = tmp_path / "weasyprint"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import warnings\n"
        "warnings.warn('HarfBuzz-Subset will be required by future versions of WeasyPrint. '"
        "'Please install this library with your package manager.', DeprecationWarning)\n"
        "FAKE = True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "weasyprint", raising=False)
    assert load_weasyprint().FAKE
    monkeypatch.delitem(sys.modules, "weasyprint")
    (fake / "__init__.py").write_text(
        "import warnings\nwarnings.warn('other', DeprecationWarning)\n"
    )
    with pytest.raises(DeprecationWarning, match="other"):
        load_weasyprint()  # only that one notice is silenced


@pytest.fixture(scope="module")
def wrong_report():
    problem = make_problem(BUILTIN_DATASETS["seed"], init=SINGLE_INIT)
    return explain(problem, "drop-factor-2", tape=emulated_tape, backward=False)


def _table_of(html: str, section_class: str) -> str:
    """The table of the first section with this class."""
    start = html.index("<table", html.index(f'<section class="{section_class}'))
    return html[start : html.index("</table>", start)]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_wrong_formulas_value_is_labelled_as_such(wrong_report, lang):
    from derive.common.i18n import translator

    t = translator(lang)
    html = to_html(wrong_report, lang)
    wrong = t.text("reference.wrong_formula", kind="drop-factor-2")
    for table in (_table_of(html, "summary"), _table_of(html, "checks")):
        # one label for each gradient (W and b); the loss's reference stays exact
        assert table.count(wrong) == 2
        assert table.count(f'"source">{t.text("reference.exact")}<') == 1
        assert t.text("table.exact_reference") not in table
        assert t.text("summary.derived") not in table


def test_json_says_which_formula_the_gradient_references_come_from(report, wrong_report, schema):
    from derive.symbolic.derivation import WRONG_FORMULAS

    assert json.loads(to_json(report))["gradient_formula"] == "derived"
    document = json.loads(to_json(wrong_report))
    jsonschema.validate(document, schema)
    assert document["gradient_formula"] == "drop-factor-2"
    formulas = schema["properties"]["gradient_formula"]["enum"]
    assert formulas == ["derived", *WRONG_FORMULAS]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _selectors(css: str) -> list[str]:
    """Every selector of every rule (inside @media blocks too); at-rules as written."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    found = []
    for prelude in re.findall(r"([^{};]+)\{", css):
        prelude = " ".join(prelude.split())
        found += [prelude] if prelude.startswith("@") else prelude.split(",")
    return [selector.strip() for selector in found]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_jupyter_view_leaves_the_notebook_alone(report, lang):
    page = plain_paths(to_html(report, lang))  # every glyph's outline wherever it appears
    # what Jupyter calls (it knows no language); Korean through the same function
    fragment = report._repr_html_() if lang == "en" else report_html_in_jupyter(report, lang)
    elements = _Elements()
    elements.feed(fragment)
    assert not {"html", "head", "body"} & set(elements.tags)
    assert elements.tags[0] == "div" and fragment.startswith('<div class="derive-report"')
    assert fragment.rstrip().endswith("</div>")
    selectors = _selectors("".join(elements.styles))
    assert len(selectors) > 40  # the whole screen stylesheet is there
    for selector in selectors:
        if selector.startswith("@"):  # print rules do not belong in a notebook
            assert selector.startswith("@media") and "print" not in selector, selector
        else:
            assert re.fullmatch(r"\.derive-report(\s.+)?", selector), selector
    # Each glyph is defined once and drawn by reference, so the fragment is a fraction
    # of the page, whose formulas repeat every glyph's outline wherever it appears;
    # measured: 0.27 to 0.34 of the page for these reports and for one with training.
    assert len(fragment) < 0.4 * len(page)
    uses = set(re.findall(r'<use href="#([^"]+)"', fragment))
    definitions = re.findall(r'<symbol id="([^"]+)"', fragment)
    assert uses and sorted(definitions) == sorted(uses)


def test_jupyter_view_does_not_change_the_page_or_the_pdf(report):
    page = to_html(report)
    report_html_in_jupyter(report)
    assert to_html(report) == page
    # WeasyPrint gets plain paths, with no references between formulas.
    printed = plain_paths(page)
    assert "<use " not in printed and "<symbol" not in printed and "@page" in printed


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_training_table_does_not_call_a_wrong_formula_exact(lang):
    from derive.common.i18n import translator
    from derive.problem.problem import Training
    from derive.report.build import formulas_for, symbolic_for
    from derive.report.training import reference_trace

    t = translator(lang)
    problem = make_problem(
        BUILTIN_DATASETS["seed"], init=SINGLE_INIT, training=Training(4, 0.01, 2)
    )
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic, "drop-factor-2"))
    report = explain(problem, "drop-factor-2", trace, backward=False)
    html = to_html(report, lang)
    start = html.index('<table class="data training-table">')
    header = html[start : html.index("</thead>", start)]
    assert header.count(t.text("reference.wrong_formula", kind="drop-factor-2")) == 2
    assert f">{t.text('training.exact')}<" not in header


@pytest.fixture(scope="module")
def inconclusive_wrong_report():
    """At the optimum (every value inconclusive) with a wrong formula: the widest tables
    (long exponents, the wrong formula's label, the reasons), with training and the
    backward pass, all without TensorFlow."""
    from derive.problem.problem import Training
    from derive.report.build import formulas_for, symbolic_for
    from derive.report.training import reference_trace

    problem = make_problem(
        BUILTIN_DATASETS["seed"],
        init={"W": -0.13043478, "b": 2.1304348},
        training=Training(4, 0.01, 2),
    )
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic, "drop-factor-2"))
    return explain(problem, "drop-factor-2", trace, backward=True)


@pytest.mark.render
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_every_table_fits_the_page_width_with_inconclusive_verdicts(
    inconclusive_wrong_report, lang
):
    from derive.render.pdf import layout

    report = inconclusive_wrong_report
    assert {c.verdict for c in report.checks} == {"inconclusive"}
    document = layout(to_html(report, lang))
    tables = 0
    for page in document.pages:
        right_edge = page.width - page._page_box.margin_right
        for box in _descendants(page._page_box):
            element = getattr(box, "element", None)
            tables += element is not None and element.tag == "table"
            # No box reaches into the right margin: the check table (seven columns and
            # a second one of measures), the per-sample table, the training table.
            assert box.position_x + box.margin_width() <= right_edge + 0.5, (
                element.tag if element is not None else box,
                element.get("class") if element is not None else "",
            )
    assert tables > 5


def test_the_mean_row_comes_once_after_the_last_sample_not_as_a_repeating_footer(report):
    """A <tfoot> repeats on every page a table spans; the mean belongs once, at the end."""
    from derive.common.i18n import translator

    html = to_html(report)
    start = html.index('<table class="data samples">')
    table = html[start : html.index("</table>", start)]
    assert "<tfoot" not in table
    mean = translator("en").count("samples.mean_over", report.problem.n)
    assert table.count(mean) == 1
    assert table.index(mean) > table.rindex('<td class="num">' + str(report.problem.n) + "</td>")


def test_numbers_in_formulas_are_typeset_never_in_e_notation():
    """Large data give values such as 2.58e+10; in a formula that would print as an
    italic e times 10 plus 10. Every formula's LaTeX (its aria-label) writes
    2.58 \\times 10^{10} instead, and running text 2.58 &times; 10<sup>10</sup> (as HTML)."""
    from derive.problem.problem import Dataset, Training
    from derive.report.build import formulas_for, symbolic_for
    from derive.report.training import reference_trace

    dataset = Dataset("large", (134364.0, 255069.0, 495435.0), (55.07, 67.62, 139.83), "test")
    problem = make_problem(dataset, init=SINGLE_INIT, training=Training(3, 0.01, 1))
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic))
    html = to_html(explain(problem, None, trace, backward=True))
    labels = re.findall(r'aria-label="([^"]*)"', html)
    assert any("\\times 10^{" in label for label in labels)
    assert not [label for label in labels if re.search(r"\de[+-]?\d", label)]
    assert "10<sup>" in html


def test_section_6_says_how_the_division_by_n_rounds_in_words(report):
    from derive.common.i18n import translator

    rf = report.rounding
    html = to_html(report)
    words = translator("en").text(f"checks.division.{min(rf.division, 2)}", n=rf.n)
    assert f"the division by n {words}: one rounding, none when n is a power of two" in html
    assert f"(2 rᵢ), so {rf.division} + 3 + 1 = {rf.division + 4};" in html
    assert "has 0 (one rounding" not in html


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_backward_section_styles_each_verdict_and_names_the_wrong_formula(
    inconclusive_wrong_report, lang
):
    from derive.common.i18n import translator

    t = translator(lang)
    report = inconclusive_wrong_report
    html = to_html(report, lang)
    section = html[html.index('<section class="backward"') :]
    section = section[: section.index("</section>")]
    # the sums are held against the wrong formula, and say which
    assert section.count(t.text("backward.differs_wrong", kind="drop-factor-2")) == 2
    assert t.text("backward.differs") not in section
    # at the optimum the adjoints are inconclusive: their badges say so, never pass
    assert report.backward.inconclusive > 0
    table = section[section.index('<table class="data checks backward-checks">') :]
    badges = re.findall(r'<span class="badge (\w+)">', table[: table.index("</table>")])
    assert badges.count("inconclusive") == report.backward.inconclusive


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_standardized_report_says_its_values_are_z_scores(lang):
    from derive.common.i18n import translator
    from derive.problem.problem import Training
    from derive.report.build import formulas_for, symbolic_for
    from derive.report.training import reference_trace

    t = translator(lang)
    problem = make_problem(
        BUILTIN_DATASETS["tf-examples"],
        init=SINGLE_INIT,
        training=Training(4, 0.01, 2),
        standardize=True,
    )
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic))
    report = explain(problem, None, trace, backward=False)
    html = to_html(report, lang)
    title = html[: html.index("</header>")]
    assert t.text("report.subtitle_z") in title
    assert t.text("problem.z_as", name="x", dtype="float32") in html
    summary = html[html.index('<section class="summary') :]
    summary = summary[: summary.index("</section>")]
    start = t.text("summary.original_units", step=4, line="@").split("@")[0]
    assert start in summary


def test_the_summary_gives_the_cause_when_training_diverges():
    from derive.common.i18n import translator
    from derive.problem.problem import Dataset, Training
    from derive.report.build import formulas_for, symbolic_for
    from derive.report.training import reference_trace

    dataset = Dataset("large", (134364.0, 255069.0, 495435.0), (55.07, 67.62, 139.83), "test")
    problem = make_problem(dataset, init=SINGLE_INIT, training=Training(50, 0.01, 10))
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic))
    report = explain(problem, None, trace, backward=False)
    assert report.training.diverged_at is not None
    html = to_html(report)
    summary = html[html.index('<section class="summary') :]
    summary = summary[: summary.index("</section>")]
    cause = translator("en").raw("summary.diverged_cause").split("{eta}")[0]
    assert cause in summary and "stable limit" in summary and "--standardize" in summary


def _section_after(html: str, title: str, next_title: str) -> str:
    return html[html.index(title) : html.index(next_title)]


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_wrong_formula_in_sections_4_and_5_says_so(report, wrong_report, lang):
    """Section 3 derives the right formula; where sections 4 and 5 use the wrong one
    (--wrong-derivative), a callout says so and the gradients carry its label."""
    from derive.common.i18n import translator

    t = translator(lang)
    wrong = t.text("reference.wrong_formula", kind="drop-factor-2")
    html = to_html(wrong_report, lang)
    titles = [t.text(key) for key in ("substitution.title", "samples.title", "checks.title")]
    substitution = _section_after(html, titles[0], titles[1])
    samples = _section_after(html, titles[1], titles[2])
    callout = t.text(
        "substitution.wrong_from_here",
        kind="drop-factor-2",
        what=t.text("wrong.drop-factor-2"),
    )
    assert substitution.count(callout) == 1
    assert substitution.count(wrong) == 4  # each gradient, as written out and as summed
    assert t.text("samples.wrong_formula", kind="drop-factor-2") in samples
    # in the table: the means of the shares of W and of b
    assert samples[samples.index("<table") :].count(wrong) == 2
    right = to_html(report, lang)
    assert wrong not in _section_after(right, titles[0], titles[2])


def test_a_diverging_run_has_one_verdict_in_table_result_summary_and_json():
    """The step where values become non-finite is checked like the others: its badge,
    the training's result, the report's verdict and the JSON agree, and the counts too."""
    from derive.exact.check import FAIL, OVERFLOW
    from derive.problem.problem import Dataset, Training
    from derive.report.build import formulas_for, symbolic_for
    from derive.report.training import reference_trace

    x = (860.0, 1100.0, 1320.0, 1550.0, 1780.0, 2010.0, 2240.0, 2480.0)
    y = (176000.0, 219259.0, 258913.0, 300370.0, 341827.0, 383283.0, 424740.0, 468000.0)
    problem = make_problem(
        Dataset("big8", x, y, "test"), init=SINGLE_INIT, training=Training(20, 0.01, 5)
    )
    symbolic = symbolic_for(problem)
    trace = reference_trace(problem, symbolic, formulas_for(symbolic))
    report = explain(problem, None, trace, backward=False)
    training = report.training
    assert training.diverged_at is not None
    # the loss leaves float32's range first, with its exact value beyond it as well
    assert training.verdict == OVERFLOW and training.overflowed_checks >= 1
    assert training.failed_checks == 0 and not training.ok
    row = training.rows[-1]
    assert not row.finite and row.step == training.diverged_at and row.verdict == OVERFLOW
    assert report.verdict == OVERFLOW
    document = json.loads(to_json(report))
    assert document["verdict"] == OVERFLOW
    assert document["overflowed"] == training.overflowed_checks
    assert document["training"]["overflowed_checks"] == training.overflowed_checks
    assert document["training"]["displayed"][-1]["verdict"] == OVERFLOW
    html = to_html(report)
    assert '<span class="badge overflow">overflow</span>' in html
    verdict_badges = re.findall(r'<span class="badge (\w+)">(\w+)</span>', html)
    assert (OVERFLOW, OVERFLOW.upper()) in verdict_badges  # the result and the summary
    assert not [b for b in verdict_badges if b[1].lower() == FAIL]
    assert "non-finite</span></td>" in html  # said beside the badge, not instead of it


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_backward_failure_names_this_runs_formula_once(inconclusive_wrong_report, lang):
    from derive.common.i18n import translator

    t = translator(lang)
    failures = inconclusive_wrong_report.backward.failures
    sums = [m for m in failures if m.key.startswith("failure.sums_differ")]
    assert len(sums) == 1  # one message for both gradients
    text = t.text(sums[0])
    assert "drop-factor-2" in text and "dL/dW" in text and "dL/db" in text
    assert "--wrong-derivative" not in text
    html = to_html(inconclusive_wrong_report, lang)
    summary = html[html.index('<section class="summary') :]
    summary = summary[: summary.index("</section>")]
    assert summary.count(text[5:]) == 1


def test_the_footer_gives_the_whole_command(tmp_path):
    """--data, --seed, --lr, --standardize and the rest: the footer's command makes the
    same problem again."""
    import shlex

    from derive.cli.parser import build_parser
    from derive.problem.datasets import read_csv_text
    from derive.problem.problem import Training
    from derive.report.sections import reproduce_command

    dataset = read_csv_text("a,b\n1,2\n3,5\n4,9\n", "big values.csv", ("a", "b"))
    problem = make_problem(
        dataset, seed=3, training=Training(200, 0.02, 20), standardize=True, dtype="float64"
    )
    command = reproduce_command(problem)
    args = build_parser().parse_args(shlex.split(command)[3:])
    assert (args.data, args.columns, args.seed) == ("big values.csv", "a,b", 3)
    assert (args.steps, args.lr, args.display_step) == (200, 0.02, 20)
    assert args.standardize and args.dtype == "float64"
    pinned = make_problem(BUILTIN_DATASETS["seed"], init=SINGLE_INIT)
    assert reproduce_command(pinned).startswith("python -m derive report --data seed --init W=")
    html = to_html(explain(pinned, None, tape=emulated_tape, backward=False))
    assert "Reproduce with <code>python -m derive report --data seed --init" in html

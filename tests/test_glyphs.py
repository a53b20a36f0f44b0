"""The HTML file defines each formula glyph once; the PDF still gets plain paths."""

from __future__ import annotations

import re

import pytest

from derive.problem.problem import BUILTIN_DATASETS, make_problem
from derive.render import glyphs
from derive.render.environment import render_template
from derive.render.glyphs import plain_paths, short_path
from derive.render.outputs import to_html
from derive.report.build import explain
from tests.conftest import SINGLE_INIT
from tests.emulated_tape import emulated_tape


@pytest.fixture(scope="module")
def report():
    problem = make_problem(BUILTIN_DATASETS["seed"], init=SINGLE_INIT)
    return explain(problem, tape=emulated_tape, backward=True)


def _glyph_element(page: str) -> str:
    found = glyphs.GLYPHS_ELEMENT.findall(page)
    assert len(found) == 1
    return found[0]


def test_each_glyph_is_defined_once_and_every_use_resolves(report):
    page = to_html(report)
    defined = re.findall(r'<symbol id="([^"]+)"', page)
    assert defined and len(defined) == len(set(defined))
    # all definitions sit in the one hidden element at the top of the body
    assert re.findall(r'<symbol id="([^"]+)"', _glyph_element(page)) == defined
    assert page.index("<body>") < page.index('class="derive-glyphs"') < page.index("<h1")
    used = re.findall(r'<use href="#([^"]+)"', page)
    assert set(used) == set(defined)  # every use resolves, no definition unused
    assert list(dict.fromkeys(used)) == defined  # in the order of first use
    assert len(used) > 2 * len(defined)


def test_the_page_is_deterministic_and_the_pdf_input_unchanged(report):
    page = to_html(report)
    assert to_html(report) == page
    # What WeasyPrint prints is the page as it was before glyphs were shared.
    assert plain_paths(page) == render_template("report.html.j2", report=report, plots={})


def test_a_page_from_elsewhere_gets_each_formula_its_own_glyphs(report, monkeypatch):
    page = to_html(report)
    monkeypatch.setattr(glyphs, "_PLAIN", {})  # as if rendered in another process
    printed = plain_paths(page)
    assert 'class="derive-glyphs"' not in printed
    for formula in re.findall(r'<svg [^>]*class="math[^"]*".*?</svg>', printed, re.S):
        used = set(re.findall(r'href="#([^"]+)"', formula))
        assert used <= set(re.findall(r'<symbol id="([^"]+)"', formula))


def test_a_glyph_without_outline_does_not_swallow_its_neighbours():
    markup = (
        '<svg><symbol id="STIXTwoMathRegular_1" viewBox="0 0 0 5" />'
        '<use href="#STIXTwoMathRegular_1" x="0" y="0" width="0" height="5" fill="black" />'
        '<symbol id="STIXTwoMathRegular_2" viewBox="0 0 2 5"><path d="M 0 0 L 1 1 Z" /></symbol>'
        '<use href="#STIXTwoMathRegular_2" x="1.2345" y="-0.001" width="2" height="5" fill="red" />'
        "</svg>"
    )
    shared = glyphs.share(markup, "<svg>plain</svg>")
    assert shared == (
        '<svg><use href="#g1" x="0" y="0" width="0" height="5"/>'
        '<use href="#g2" x="1.23" y="0" width="2" height="5" fill="red"/></svg>'
    )


def test_path_data_is_short():
    match = glyphs.PATH_DATA.search('d="M 1.234567 -0.0001 \nL 10 2.5\n"')
    assert short_path(match) == 'd="M 1.23 0 L 10 2.5"'


def test_the_plain_forms_kept_are_capped_the_least_recently_used_going_first(monkeypatch):
    """A Jupyter session renders formulas without end; what is kept for the PDF is not."""
    monkeypatch.setattr(glyphs, "_PLAIN", {})
    monkeypatch.setattr(glyphs, "PLAIN_LIMIT", 3)
    for k in range(3):
        glyphs._remember_plain(f"shared{k}", f"plain{k}")
    glyphs._remember_plain("shared0", "plain0")  # used again: now the most recent
    glyphs._remember_plain("shared3", "plain3")
    assert list(glyphs._PLAIN) == ["shared2", "shared0", "shared3"]

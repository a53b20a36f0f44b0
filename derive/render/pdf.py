"""HTML -> PDF with WeasyPrint: a URL fetcher that serves only our own assets (the CJK
font), reproducible bytes (SOURCE_DATE_EPOCH while printing), and its notices said once
as warnings, never as log output."""

from __future__ import annotations

import io
import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ..common.errors import RenderError
from .fonts import CJK_BOLD_PACKAGE, CJK_FAMILY, cjk_font, font_subset


# Only the PDF loads the CJK font; the HTML names the family and lets the browser use
# what it has.
@cache
def _asset_bytes(path: Path) -> bytes:
    return path.read_bytes()


def own_assets() -> dict[str, Path]:
    """URL -> file of every asset the PDF may load: the CJK fonts, nothing else."""
    fonts = (cjk_font(), cjk_font(CJK_BOLD_PACKAGE))
    return {font.as_uri(): font for font in fonts if font is not None}


def _same_url(url: str) -> str:
    return unquote(url.split("#", 1)[0])


class OwnAssetsOnly:
    """A URL fetcher for WeasyPrint that fetches only derive's own assets.

    The report is self-contained (inline CSS and SVG); the one file the PDF loads is
    the font for Korean text. Any other URL is either a mistake or an attempt to read
    local files or the network; every one is refused and remembered, so tests can see
    what was asked for (and what was fetched).
    """

    def __init__(self, assets: Mapping[str, Path] | None = None) -> None:
        self.assets = {_same_url(url): path for url, path in (assets or {}).items()}
        self.refused: list[str] = []
        self.fetched: list[str] = []
        self.characters: str | None = None  # set: fonts are served cut down to these

    def only_for(self, text: str) -> None:
        """Serve the fonts cut down to the characters of `text` (the document printed):
        the same glyphs wherever the text uses them, far less for WeasyPrint to subset."""
        self.characters = "".join(sorted(set(text)))

    def __call__(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return self.fetch(url)

    def fetch(self, url: str, headers: Any = None) -> Any:
        path = self.assets.get(_same_url(url))
        if path is None:
            self.refused.append(url)
            raise ValueError(f"derive does not fetch {url}")
        self.fetched.append(url)
        if self.characters is not None:
            return self.respond(url, font_subset(path, self.characters))
        return self.respond(url, _asset_bytes(path))

    def respond(self, url: str, body: bytes) -> Any:
        return {"string": body, "redirected_url": url}


@cache
def _fetcher_class() -> type:
    load_weasyprint()
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class Fetcher(OwnAssetsOnly, URLFetcher):  # type: ignore[misc]
        def __init__(self, assets: Mapping[str, Path] | None = None) -> None:
            URLFetcher.__init__(self)
            OwnAssetsOnly.__init__(self, assets)

        def fetch(self, url: str, headers: Any = None) -> Any:
            return OwnAssetsOnly.fetch(self, url, headers)

        def respond(self, url: str, body: bytes) -> Any:
            return URLFetcherResponse(url, body, {"Content-Type": "font/otf"})

    return Fetcher


def make_fetcher(assets: Mapping[str, Path] | None = None) -> OwnAssetsOnly:
    """A fetcher that serves `assets` (default: derive's own) and refuses everything else."""
    return _fetcher_class()(own_assets() if assets is None else assets)  # type: ignore[no-any-return]


def font_face_css() -> str:
    """@font-face for the CJK family from the installed font file ('' without one)."""
    font, bold = cjk_font(), cjk_font(CJK_BOLD_PACKAGE)
    if font is None:
        return ""
    css = f'@font-face {{ font-family: "{CJK_FAMILY}"; src: url("{font.as_uri()}"); }}'
    if bold is not None:  # else WeasyPrint prints bold Hangul in the regular face
        css += (
            f' @font-face {{ font-family: "{CJK_FAMILY}"; font-weight: bold;'
            f' src: url("{bold.as_uri()}"); }}'
        )
    return css


_CJK_TEXT = re.compile("[\u1100-\u11ff\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def needs_cjk_font(html: str) -> bool:
    return bool(_CJK_TEXT.search(html))


def load_weasyprint() -> Any:
    """Import WeasyPrint, the one place it is loaded.

    Without the HarfBuzz subsetting library (Debian's ``libharfbuzz-subset0``) WeasyPrint
    warns on import that a future version will require it. This version subsets fonts
    with fontTools instead, and with ``SOURCE_DATE_EPOCH`` set the PDF bytes are the
    same, so the notice is about WeasyPrint's future, not about this report: it must not
    reach the user, nor become an error where warnings are errors (the tests).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="HarfBuzz-Subset will be required", category=DeprecationWarning
        )
        import weasyprint
    return weasyprint


class _DropFontSubsetNotice(logging.Filter):
    """WeasyPrint notes when it subsets fonts with fontTools instead of HarfBuzz; the
    PDF is the same, so the notice is only noise for the user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HarfBuzz-Subset" not in record.getMessage()


@contextmanager
def _reproducible_fonts() -> Iterator[None]:
    """Embedded font subsets carry a timestamp unless SOURCE_DATE_EPOCH is set; fix it,
    so the same report gives the same bytes. An epoch set by the caller is kept."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        yield
        return
    os.environ["SOURCE_DATE_EPOCH"] = "0"
    try:
        yield
    finally:
        os.environ.pop("SOURCE_DATE_EPOCH", None)


def to_pdf(html: str, fetcher: OwnAssetsOnly | None = None) -> bytes:
    """The same HTML, printed by WeasyPrint with the print styles."""
    return _print(html, fetcher)


def to_pdf_pages(html: str, fetcher: OwnAssetsOnly | None = None) -> tuple[bytes, list[bytes]]:
    """The whole document as one PDF, and each of its pages as a PDF of its own.

    The document is laid out and printed once, and its pages are cut from that PDF
    (handouts: one page per sheet). Printing each page again would subset every font
    again, page by page: that cost 0.9 s a page, six times the page's share of the print.
    """
    whole = _print(html, fetcher)
    return whole, split_pages(whole)


def split_pages(pdf: bytes) -> list[bytes]:
    """Each page of a PDF as a PDF of its own, with the document's metadata. The pages
    keep the fonts they use, subset for the whole document."""
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(io.BytesIO(pdf))
    pages = []
    for page in reader.pages:
        writer = PdfWriter()
        writer.add_page(page)
        if reader.metadata:
            writer.add_metadata(dict(reader.metadata))
        pages.append(_written(writer))
    return pages


def join_pdfs(pdfs: Sequence[bytes]) -> bytes:
    """Several PDFs as one, page after page (handouts printed in parts by several
    processes), with the first one's metadata."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for number, pdf in enumerate(pdfs):
        reader = PdfReader(io.BytesIO(pdf))
        writer.append(reader)
        if number == 0 and reader.metadata:
            writer.add_metadata(dict(reader.metadata))
    return _written(writer)


def _written(writer: Any) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


_BETWEEN_SYLLABLES = re.compile("(?<=[\uac00-\ud7a3])(?=[\uac00-\ud7a3])")


def keep_korean_words(html: str) -> str:
    """A word joiner (U+2060) between Hangul syllables, so that lines break between
    Korean words, not inside them (CSS word-break: keep-all, which WeasyPrint lacks)."""
    return _BETWEEN_SYLLABLES.sub("\u2060", html)


def layout(html: str, fetcher: OwnAssetsOnly | None = None) -> Any:
    """WeasyPrint's laid-out document (pages of boxes), as the PDF is printed from it;
    tests measure its boxes against the page."""
    from .glyphs import plain_paths

    html = keep_korean_words(html)
    weasyprint = load_weasyprint()
    fetcher = fetcher or make_fetcher()
    html = plain_paths(html)  # WeasyPrint resolves no <use> across inline SVGs
    # Only pages with Korean (or other CJK) text load the 16 MB font; its glyphs are
    # subset, so only the characters used are embedded.
    font_css = font_face_css() if needs_cjk_font(html) else ""
    if font_css:
        fetcher.only_for(html)
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    stylesheets = (
        [weasyprint.CSS(string=font_css, url_fetcher=fetcher, font_config=fonts)]
        if font_css
        else []
    )
    return weasyprint.HTML(string=html, url_fetcher=fetcher, base_url=None).render(
        stylesheets=stylesheets, font_config=fonts
    )


def _print(html: str, fetcher: OwnAssetsOnly | None) -> bytes:
    try:
        load_weasyprint()
    except (ImportError, OSError) as error:
        raise RenderError(
            f"cannot load WeasyPrint to make the PDF: {error}; nothing was written "
            "(--format html,json works without it)"
        ) from error
    logger = logging.getLogger("weasyprint")
    notice_filter = _DropFontSubsetNotice()
    logger.addFilter(notice_filter)
    try:
        with _reproducible_fonts():
            return layout(html, fetcher).write_pdf()
    except Exception as error:
        raise RenderError(
            f"WeasyPrint could not make the PDF: {error}; nothing was written"
        ) from error
    finally:
        logger.removeFilter(notice_filter)

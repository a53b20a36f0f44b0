"""Report -> HTML (one Jinja2 environment), HTML -> PDF (WeasyPrint), and safe file writes."""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import jinja2
from markupsafe import Markup

from .errors import OutputError, RenderError
from .fonts import CJK_BOLD_PACKAGE, CJK_FAMILY, cjk_font
from .i18n import DEFAULT, Translator, translator
from .mathsvg import latex_to_svg
from .numbers import exact_float, latex_number, plain, prose_number
from .signals import deferred, note_written

if TYPE_CHECKING:
    from .jsonout import EncodedSamples
    from .report import Report

FORMATS = ("html", "pdf", "json")


def _template_root() -> Path:
    # A source checkout keeps the templates next to the package; an installed
    # package carries them as derive/templates.
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if (checkout / "report.html.j2").is_file():
        return checkout
    return Path(str(resources.files("derive") / "templates"))


# True while a page is rendered whose formulas share their glyphs (the Jupyter view,
# derive.notebook); the HTML file and the PDF keep plain paths.
GLYPH_SYMBOLS: ContextVar[bool] = ContextVar("derive_glyph_symbols", default=False)


def _math(latex: str, label: str | None = None) -> Markup:
    if GLYPH_SYMBOLS.get():
        return Markup(latex_to_svg(latex, label, symbols=True))
    return Markup(latex_to_svg(latex, label))


def _display_math(latex: str, label: str | None = None) -> Markup:
    if GLYPH_SYMBOLS.get():
        return Markup(latex_to_svg(latex, label, display=True, symbols=True))
    return Markup(latex_to_svg(latex, label, display=True))


def _backward_graph(facts: Any, t: Translator | None = None) -> Markup:
    from .graph import draw

    return Markup(draw(facts, t))


def _html_math(latex: str) -> Markup:
    from .mathhtml import latex_to_html

    return Markup(latex_to_html(latex))


def _code(text: str) -> Markup:
    return Markup("<code>{}</code>").format(text)


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _css_counter(text: str) -> Markup:
    """'page {page} of {pages}' -> the CSS content value "page " counter(page) " of " ..."""
    import string

    parts = []
    for literal, name, _, _ in string.Formatter().parse(str(text)):
        if literal:
            parts.append(_css_string(literal))
        if name:
            if name not in {"page", "pages"}:
                raise RenderError(f"unknown page counter {name!r} in the catalogue")
            parts.append(f"counter({name})")
    return Markup(" ".join(parts))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_template_root())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = plain
    env.filters["exact"] = exact_float
    env.filters["latexnum"] = latex_number
    env.filters["prose"] = lambda value, digits=10: Markup(prose_number(value, digits))
    env.filters["math"] = _math
    env.filters["displaymath"] = _display_math
    env.filters["backward_graph"] = _backward_graph
    env.filters["code"] = _code
    env.filters["hmath"] = _html_math
    env.filters["css_counter"] = _css_counter
    env.globals["t"] = translator(DEFAULT)  # a render call passes the language it wants
    return env


def render_template(name: str, lang: str = DEFAULT, **context: Any) -> str:
    """A template with the translator `t` of the language and the version in its context."""
    from . import __version__

    t: Translator = translator(lang)
    return environment().get_template(name).render(t=t, version=__version__, **context)


def training_plots(report: Report, lang: str = DEFAULT) -> dict[str, Markup]:
    """The training plots as inline SVG, by name (none without training)."""
    if report.training is None:
        return {}
    import dataclasses

    from .plots import plot_data, training_plots

    data = plot_data(report.training)
    data = dataclasses.replace(data, spec=dataclasses.replace(data.spec, lang=lang))
    return {name: Markup(svg) for name, svg in training_plots(data).items()}


def to_html(report: Report, lang: str = DEFAULT, plots: Mapping[str, Markup] | None = None) -> str:
    if plots is None:
        plots = training_plots(report, lang)
    return render_template("report.html.j2", lang, report=report, plots=plots)


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

    def __call__(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return self.fetch(url)

    def fetch(self, url: str, headers: Any = None) -> Any:
        path = self.assets.get(_same_url(url))
        if path is None:
            self.refused.append(url)
            raise ValueError(f"derive does not fetch {url}")
        self.fetched.append(url)
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
    return _print(html, fetcher, split=False)[0]


def to_pdf_pages(html: str, fetcher: OwnAssetsOnly | None = None) -> tuple[bytes, list[bytes]]:
    """The whole document as one PDF, and each of its pages as a PDF of its own.

    The layout is done once; the pages share it (handouts: one page per sheet).
    """
    whole, *pages = _print(html, fetcher, split=True)
    return whole, pages


def layout(html: str, fetcher: OwnAssetsOnly | None = None) -> Any:
    """WeasyPrint's laid-out document (pages of boxes), as the PDF is printed from it;
    tests measure its boxes against the page."""
    weasyprint = load_weasyprint()
    fetcher = fetcher or make_fetcher()
    # Only pages with Korean (or other CJK) text load the 16 MB font; its glyphs are
    # subset, so only the characters used are embedded.
    font_css = font_face_css() if needs_cjk_font(html) else ""
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


def _print(html: str, fetcher: OwnAssetsOnly | None, split: bool) -> list[bytes]:
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
            document = layout(html, fetcher)
            results = [document.write_pdf()]
            if split:
                results += [document.copy([page]).write_pdf() for page in document.pages]
            return results
    except Exception as error:
        raise RenderError(
            f"WeasyPrint could not make the PDF: {error}; nothing was written"
        ) from error
    finally:
        logger.removeFilter(notice_filter)


def render_all(
    report: Report,
    formats: Iterable[str],
    progress: Callable[[str], None] = lambda _: None,
    lang: str = DEFAULT,
    plots: Callable[[], Mapping[str, str]] | None = None,
    samples_json: Callable[[], EncodedSamples] | None = None,
) -> dict[str, bytes]:
    """Every requested format, in memory: nothing is written until all have succeeded.

    `plots` supplies the training plots when they were drawn elsewhere (as inline SVG
    by name); without it they are drawn here. `samples_json`, likewise, supplies the
    sample arrays of a large report encoded as JSON elsewhere (see
    :func:`derive.jsonout.to_json`).
    """
    from .jsonout import to_json

    formats = list(formats)
    contents: dict[str, bytes] = {}
    html: str | None = None
    if "html" in formats or "pdf" in formats:
        progress("plots")
        drawn = (
            {name: Markup(svg) for name, svg in plots().items()}
            if plots is not None and report.training is not None
            else training_plots(report, lang)
        )
        progress("html")
        html = to_html(report, lang, drawn)
    if "html" in formats:
        contents["html"] = html.encode("utf-8")  # type: ignore[union-attr]
    if "pdf" in formats:
        progress("pdf")
        contents["pdf"] = to_pdf(html)  # type: ignore[arg-type]
    if "json" in formats:
        encoded = samples_json() if samples_json is not None else None
        contents["json"] = to_json(report, encoded).encode("utf-8")
    return contents


def check_writable(folder: Path, targets: Iterable[Path] = ()) -> None:
    """Make sure the output folder exists and is writable or can be made, and that no
    target is in the way (a folder where a file goes). Creates nothing: a run that
    fails later must not leave an empty folder behind."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing != folder:
        if not existing.is_dir():
            raise OutputError(
                "cannot create the output folder", f"{folder}: {os.strerror(errno.ENOTDIR)}"
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(
                "cannot create the output folder", f"{folder}: {os.strerror(errno.EACCES)}"
            )
    elif not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError("cannot write to the output folder", folder)
    check_targets(targets)


def check_targets(targets: Iterable[Path]) -> None:
    """A folder where a file is to go would fail its rename after the others were done."""
    for path in targets:
        if path.is_dir():
            raise OutputError(
                "a folder is in the way of a file to write; nothing was written", path
            )


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, innermost last."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    created: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir()
            created.append(path)
    except OSError as error:
        _remove_folders(created)
        raise OutputError(
            "cannot create the output folder", f"{folder}: {error.strerror}"
        ) from None
    return created


def _remove_folders(created: list[Path]) -> None:
    for path in reversed(created):
        with suppress(OSError):
            path.rmdir()


def _rename_all(staged: list[tuple[str, Path]]) -> None:
    """Rename every file into place, all or none as far as signals go: SIGINT, SIGTERM
    and SIGHUP are held back until the last rename is done, then delivered."""
    with deferred():
        for temporary, path in staged:
            os.replace(temporary, path)
        note_written(path for _, path in staged)


def write_atomically(files: Mapping[Path, bytes]) -> list[Path]:
    """Write each file to a temporary name in its folder, then rename them all into place.

    Every target is checked first, and the folders are made only now. A failure or a
    signal before the renames leaves every earlier file untouched and no temporary file.
    """
    check_targets(files)
    created = [
        path for folder in dict.fromkeys(p.parent for p in files) for path in _make_folders(folder)
    ]
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            # Held signals: a temporary file made but not yet recorded would be left behind.
            with deferred():
                descriptor, temporary = tempfile.mkstemp(
                    dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
                )
                staged.append((temporary, path))
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o644)
        _rename_all(staged)
    except OSError as error:
        _discard(staged, created)
        raise OutputError(
            "cannot write the report", f"{error.filename}: {error.strerror}"
        ) from None
    except BaseException:
        _discard(staged, created)
        raise
    return [path for _, path in staged]


def _discard(staged: list[tuple[str, Path]], created: list[Path]) -> None:
    """Remove the temporary files, and the folders made for them if nothing got in."""
    for temporary, _ in staged:
        if os.path.exists(temporary):
            os.unlink(temporary)
    _remove_folders(created)

"""Report -> HTML (one Jinja2 environment), HTML -> PDF (WeasyPrint), and safe file writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from .errors import OutputError, RenderError
from .mathsvg import latex_to_svg
from .numbers import exact_float, plain

if TYPE_CHECKING:
    from .report import Report

FORMATS = ("html", "pdf", "json")


def _template_root() -> Path:
    # A source checkout keeps the templates next to the package; an installed
    # package carries them as derive/templates.
    checkout = Path(__file__).resolve().parent.parent / "templates"
    if (checkout / "report.html.j2").is_file():
        return checkout
    return Path(str(resources.files("derive") / "templates"))


def _math(latex: str, label: str | None = None) -> Markup:
    return Markup(latex_to_svg(latex, label))


def _display_math(latex: str, label: str | None = None) -> Markup:
    return Markup(latex_to_svg(latex, label, display=True))


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
    env.filters["math"] = _math
    env.filters["displaymath"] = _display_math
    return env


def training_plots(report: Report) -> dict[str, Markup]:
    """The training plots as inline SVG, by name (none without training)."""
    if report.training is None:
        return {}
    from .plots import plot_data, training_plots

    return {name: Markup(svg) for name, svg in training_plots(plot_data(report.training)).items()}


def to_html(report: Report, plots: Mapping[str, Markup] | None = None) -> str:
    if plots is None:
        plots = training_plots(report)
    return environment().get_template("report.html.j2").render(report=report, plots=plots)


class OwnAssetsOnly:
    """A URL fetcher for WeasyPrint that fetches nothing.

    The report is self-contained (inline CSS and SVG), so any URL in it is either a
    mistake or an attempt to read local files or the network; every one is refused
    and remembered, so tests can see what was asked for.
    """

    def __init__(self) -> None:
        self.refused: list[str] = []

    def __call__(self, url: str, *args: Any, **kwargs: Any) -> Any:
        return self.fetch(url)

    def fetch(self, url: str, headers: Any = None) -> Any:
        self.refused.append(url)
        raise ValueError(f"derive does not fetch {url}")


@cache
def _fetcher_class() -> type:
    from weasyprint.urls import URLFetcher

    class Fetcher(OwnAssetsOnly, URLFetcher):  # type: ignore[misc]
        def __init__(self) -> None:
            URLFetcher.__init__(self)
            OwnAssetsOnly.__init__(self)

        def fetch(self, url: str, headers: Any = None) -> Any:
            return OwnAssetsOnly.fetch(self, url, headers)

    return Fetcher


def make_fetcher() -> OwnAssetsOnly:
    return _fetcher_class()()  # type: ignore[no-any-return]


def to_pdf(html: str, fetcher: OwnAssetsOnly | None = None) -> bytes:
    """The same HTML, printed by WeasyPrint with the print styles."""
    try:
        import weasyprint
    except (ImportError, OSError) as error:
        raise RenderError(f"cannot load WeasyPrint to make the PDF: {error}") from error
    fetcher = fetcher or make_fetcher()
    try:
        return weasyprint.HTML(string=html, url_fetcher=fetcher, base_url=None).write_pdf()
    except Exception as error:
        raise RenderError(f"WeasyPrint could not make the PDF: {error}") from error


@dataclass(frozen=True)
class Output:
    format: str
    path: Path


def render_all(
    report: Report,
    formats: Iterable[str],
    progress: Callable[[str], None] = lambda _: None,
    plots: Callable[[], Mapping[str, str]] | None = None,
) -> dict[str, bytes]:
    """Every requested format, in memory: nothing is written until all have succeeded.

    `plots` supplies the training plots when they were drawn elsewhere (as inline SVG
    by name); without it they are drawn here.
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
            else training_plots(report)
        )
        progress("html")
        html = to_html(report, drawn)
    if "html" in formats:
        contents["html"] = html.encode("utf-8")  # type: ignore[union-attr]
    if "pdf" in formats:
        progress("pdf")
        contents["pdf"] = to_pdf(html)  # type: ignore[arg-type]
    if "json" in formats:
        contents["json"] = to_json(report).encode("utf-8")
    return contents


def check_writable(folder: Path) -> None:
    """Create the output folder and make sure a file can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(
            "cannot create the output folder", f"{folder}: {error.strerror}"
        ) from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError("cannot write to the output folder", folder)


def write_atomically(files: Mapping[Path, bytes]) -> list[Path]:
    """Write each file to a temporary name in its folder, then rename them all into place.

    A failure before the renames leaves every earlier file untouched.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            descriptor, temporary = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
            )
            staged.append((temporary, path))
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o644)
        for temporary, path in staged:
            os.replace(temporary, path)
    except OSError as error:
        for temporary, _ in staged:
            if os.path.exists(temporary):
                os.unlink(temporary)
        raise OutputError(
            "cannot write the report", f"{error.filename}: {error.strerror}"
        ) from None
    except BaseException:
        for temporary, _ in staged:
            if os.path.exists(temporary):
                os.unlink(temporary)
        raise
    return [path for _, path in staged]

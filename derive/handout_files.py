"""Handouts as files: a PDF per sheet and per key, one PDF of all sheets and one of all
keys for printing, and an index page.

All sheets are one HTML document with a page break after each, printed by WeasyPrint
once; each page is then saved as a PDF of its own. Sheets and keys go to two worker
processes, so both cores work.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass

from .errors import RenderError
from .handouts import KEY_DIGITS, Handouts

WORKERS = 2


@dataclass(frozen=True)
class FileNames:
    sheets: str
    keys: str
    index: str
    sheet: tuple[str, ...]
    key: tuple[str, ...]


def file_names(handouts: Handouts) -> FileNames:
    ids = [sheet.spec.identifier for sheet in handouts.sheets]
    return FileNames(
        sheets="sheets.pdf",
        keys="keys.pdf",
        index="index.html",
        sheet=tuple(f"sheet-{i}.pdf" for i in ids),
        key=tuple(f"key-{i}.pdf" for i in ids),
    )


def document_html(handouts: Handouts, filled: bool) -> str:
    """Every sheet (or every key) of the class, one page each."""
    from .i18n import translator
    from .render import render_template

    t = translator(handouts.lang)
    title = t.text(
        "handouts.title_keys" if filled else "handouts.title_sheets", seed=handouts.class_seed
    )
    return render_template(
        "handouts/document.html.j2",
        handouts.lang,
        handouts=handouts,
        sheets=handouts.sheets,
        filled=filled,
        title=title,
        digits=KEY_DIGITS,
    )


def index_html(handouts: Handouts, names: FileNames) -> str:
    from .render import render_template

    return render_template("handouts/index.html.j2", handouts.lang, handouts=handouts, files=names)


def render_set(handouts: Handouts, filled: bool) -> tuple[bytes, list[bytes]]:
    """The combined PDF and one PDF per page; every sheet must fit one page."""
    from .render import to_pdf_pages

    whole, pages = to_pdf_pages(document_html(handouts, filled))
    if len(pages) != len(handouts.sheets):
        what = "keys" if filled else "sheets"
        raise RenderError(
            f"the {what} do not fit one page each: {len(pages)} pages for "
            f"{len(handouts.sheets)} {what}"
        )
    return whole, pages


def warm_up(lang: str) -> None:
    """Import and prepare what rendering needs (run in a worker before the work arrives)."""
    from .i18n import translator
    from .render import environment, font_face_css, load_weasyprint

    load_weasyprint()

    translator(lang)
    environment()
    font_face_css()


def start_workers() -> Executor:
    """Two worker processes, started (and warmed up) now, before TensorFlow is imported."""
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    pool = ProcessPoolExecutor(WORKERS, mp_context=context)
    return pool


def render_files(
    handouts: Handouts,
    pool: Executor | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, bytes]:
    """Every file of the handouts, in memory, by name."""
    names = file_names(handouts)
    own_pool = pool is None
    pool = pool or start_workers()
    try:
        jobs: dict[bool, Future[tuple[bytes, list[bytes]]]] = {
            filled: pool.submit(render_set, handouts, filled) for filled in (False, True)
        }
        files: dict[str, bytes] = {}
        for filled, job in jobs.items():
            whole, pages = job.result()
            files[names.keys if filled else names.sheets] = whole
            for name, page in zip(names.key if filled else names.sheet, pages, strict=True):
                files[name] = page
            progress("keys" if filled else "sheets")
    finally:
        if own_pool:
            pool.shutdown()
    files[names.index] = index_html(handouts, names).encode("utf-8")
    return files

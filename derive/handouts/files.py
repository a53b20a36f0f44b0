"""Handouts as files: a PDF per sheet and per key, one PDF of all sheets and one of all
keys for printing, and an index page.

All sheets are one HTML document with a page break after each, printed by WeasyPrint
once; each page is then saved as a PDF of its own. Sheets and keys go to two worker
processes, so both cores work.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from ..common.errors import RenderError
from .facts import KEY_DIGITS, Handouts

WORKERS = 2
# Loggers of the libraries that print the PDFs. What they say while printing the
# handouts is kept and said once, in our words; their records never reach the terminal
# raw (ziafont's logging.debug() configures the root logger, which would print them).
LIBRARY_LOGGERS = ("weasyprint", "fontTools")
NO_GLYPH = ".notdef glyph rendered"  # WeasyPrint's note about a character no font has


@dataclass(frozen=True)
class PrintedSet:
    """All sheets (or all keys) as one PDF and one PDF per page, and what the PDF library
    noted while printing them."""

    whole: bytes
    pages: tuple[bytes, ...]
    notes: tuple[str, ...]


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
    from ..common.i18n import translator
    from ..render.environment import render_template

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
    from ..render.environment import render_template

    return render_template("handouts/index.html.j2", handouts.lang, handouts=handouts, files=names)


def render_set(handouts: Handouts, filled: bool) -> PrintedSet:
    """The combined PDF and one PDF per page; every sheet must fit one page."""
    from ..render.pdf import to_pdf_pages

    with library_records() as records:
        whole, pages = to_pdf_pages(document_html(handouts, filled))
    if len(pages) != len(handouts.sheets):
        what = "keys" if filled else "sheets"
        raise RenderError(
            f"the {what} do not fit one page each: {len(pages)} pages for "
            f"{len(handouts.sheets)} {what}"
        )
    notes = tuple(dict.fromkeys(record.getMessage() for record in records))
    return PrintedSet(whole, tuple(pages), notes)


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def library_records() -> Iterator[list[logging.LogRecord]]:
    """The warnings the PDF libraries log meanwhile, kept here instead of printed."""
    records: list[logging.LogRecord] = []
    handler = _Keep(records)
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    propagate = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield records
    finally:
        for logger, before in zip(loggers, propagate, strict=True):
            logger.removeHandler(handler)
            logger.propagate = before


def unprintable_characters(names: Sequence[str]) -> frozenset[str]:
    """The characters of the names that no font has a glyph for (an emoji, say).

    Only the printer knows which fonts it falls back to, so the names are printed once
    the way a sheet prints them, and WeasyPrint's notes about missing glyphs are read.
    ASCII is always in DejaVu Sans, and CJK text always brings the CJK font: what is
    printed is the rest of each name (without CJK, the 16 MB font is not loaded).
    """
    from ..render.environment import render_template
    from ..render.pdf import needs_cjk_font, to_pdf

    rest = ["".join(c for c in name if not needs_cjk_font(c)) for name in dict.fromkeys(names)]
    unusual = [name for name in rest if not name.isascii()]
    if not unusual:
        return frozenset()
    html = render_template("handouts/names.html.j2", "en", names=unusual)
    with library_records() as records:
        to_pdf(html)
    return frozenset(
        chr(record.args[1])
        for record in records
        if str(record.msg).startswith(NO_GLYPH) and isinstance(record.args, tuple)
    )


def warm_up(lang: str) -> None:
    """Import and prepare what rendering needs (run in a worker before the work arrives)."""
    from ..common.i18n import translator
    from ..render.environment import environment
    from ..render.pdf import font_face_css, load_weasyprint

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
) -> RenderedFiles:
    """Every file of the handouts, in memory, by name."""
    names = file_names(handouts)
    own_pool = pool is None
    pool = pool or start_workers()
    try:
        jobs: dict[bool, Future[PrintedSet]] = {
            filled: pool.submit(render_set, handouts, filled) for filled in (False, True)
        }
        files: dict[str, bytes] = {}
        notes: dict[str, None] = {}
        for filled, job in jobs.items():
            printed = job.result()
            files[names.keys if filled else names.sheets] = printed.whole
            pages = zip(names.key if filled else names.sheet, printed.pages, strict=True)
            files.update(pages)
            notes.update(dict.fromkeys(printed.notes))
            progress("keys" if filled else "sheets")
    finally:
        if own_pool:
            pool.shutdown()
    files[names.index] = index_html(handouts, names).encode("utf-8")
    return RenderedFiles(files, tuple(notes))


@dataclass(frozen=True)
class RenderedFiles:
    """Every file of the handouts by name, and the PDF library's notes (said once each)."""

    files: dict[str, bytes]
    notes: tuple[str, ...]

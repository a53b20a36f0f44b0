"""Handouts as files: a PDF per sheet and per key, one PDF of all sheets and one of all
keys for printing, and an index page.

The sheets (and the keys) are printed in parts: each part is one HTML document with a
page break after each sheet, printed by WeasyPrint once in a worker process, and its
pages are then cut into a PDF each. The parts spread the work over ``--jobs`` processes
and give the progress lines something to count; the combined PDF joins them.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

from ..common.errors import RenderError
from ..common.signals import deferred
from .facts import KEY_DIGITS, Handouts

# Each part pays once for subsetting the fonts when it is printed (about 0.75 s), so a
# part holds this many sheets at least, unless more workers are waiting for work.
PART_SHEETS = 12
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


def default_jobs() -> int:
    """All the cores this process may use."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return len(usable) if usable else os.cpu_count() or 1


def parts(count: int, jobs: int) -> list[range]:
    """The sheets' indices cut into consecutive parts: at least one part per worker for
    each of the two sets (sheets and keys), and about ten in all when the class is large
    enough for the progress lines to count tenths, each of PART_SHEETS sheets or more."""
    wanted = max(math.ceil(jobs / 2), min(5, count // PART_SHEETS), 1)
    number = min(wanted, count)
    size, extra = divmod(count, number)
    bounds = [0]
    for index in range(number):
        bounds.append(bounds[-1] + size + (index < extra))
    return [range(start, end) for start, end in itertools.pairwise(bounds)]


def render_set(handouts: Handouts, filled: bool, part: range | None = None) -> PrintedSet:
    """The sheets (or keys) of `part` (default: all) as one PDF and one PDF per page;
    every sheet must fit one page."""
    from ..render.pdf import to_pdf_pages

    if part is not None:
        handouts = replace(handouts, sheets=tuple(handouts.sheets[i] for i in part))

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


def start_workers(jobs: int) -> Executor:
    """`jobs` worker processes, started now (they import WeasyPrint while this process
    imports TensorFlow)."""
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    return _SignalSafePool(jobs, mp_context=context)


class _SignalSafePool(ProcessPoolExecutor):
    """Submissions hold the termination signals back and deliver them after.

    A signal is raised as an exception wherever the main thread stands
    (derive.common.signals); inside submit() it can land between the acquiring and the
    releasing of the executor's work-queue lock, and then shutdown() waits forever for
    a manager thread that waits for that lock (seen once in CI: a handouts run ended by
    SIGTERM as it began to render, hanging)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        with deferred():
            return super().submit(fn, *args, **kwargs)


def render_files(
    handouts: Handouts,
    pool: Executor | None = None,
    progress: Callable[[str, int], None] = lambda what, sheets: None,
    jobs: int = 2,
) -> RenderedFiles:
    """Every file of the handouts, in memory, by name. `progress` is told each time a
    part is printed: "sheets" or "keys", and how many sheets the part holds."""
    from concurrent.futures import as_completed

    from ..render.pdf import join_pdfs

    names = file_names(handouts)
    own_pool = pool is None
    pool = pool or start_workers(jobs)
    cut = parts(len(handouts.sheets), jobs)
    try:
        # Keys and sheets alternate, so that both sets finish at about the same time.
        work: dict[Future[PrintedSet], tuple[bool, int]] = {
            pool.submit(render_set, handouts, filled, part): (filled, number)
            for number, part in enumerate(cut)
            for filled in (False, True)
        }
        printed: dict[tuple[bool, int], PrintedSet] = {}
        for job in as_completed(work):
            filled, number = work[job]
            printed[filled, number] = job.result()
            progress("keys" if filled else "sheets", len(cut[number]))
    finally:
        if own_pool:
            pool.shutdown()
    files: dict[str, bytes] = {}
    notes: dict[str, None] = {}
    for filled in (False, True):
        ordered = [printed[filled, number] for number in range(len(cut))]
        whole = ordered[0].whole if len(ordered) == 1 else join_pdfs([p.whole for p in ordered])
        files[names.keys if filled else names.sheets] = whole
        pages = [page for part in ordered for page in part.pages]
        files.update(zip(names.key if filled else names.sheet, pages, strict=True))
        for part in ordered:
            notes.update(dict.fromkeys(part.notes))
    files[names.index] = index_html(handouts, names).encode("utf-8")
    return RenderedFiles(files, tuple(notes))


@dataclass(frozen=True)
class RenderedFiles:
    """Every file of the handouts by name, and the PDF library's notes (said once each)."""

    files: dict[str, bytes]
    notes: tuple[str, ...]

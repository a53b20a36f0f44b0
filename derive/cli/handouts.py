"""``python -m derive handouts``: validate, build the class set, render, write."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TextIO

from ..common.errors import EXIT_CHECK_FAILED, EXIT_OK, InputError
from ..models.registry import DEFAULT_LOSS

# Printing a sheet's page takes about ten times as long as checking its key against the
# tape (0.3 s against 0.02 s), and each sheet is printed twice: as a sheet and as a key.
PRINT_WEIGHT = 10


class ProgressBar:
    """A one-line bar on a terminal. When the output is not one (a log, a pipe, CI) and
    `lines` is set, a line each time another tenth of the work is done instead: a long
    run shows that it moves, without a line per sheet. The work is counted in units
    (`total`); each step says how many are done and what was done, in words."""

    def __init__(
        self, total: int, enabled: bool, lines: bool = False, stream: TextIO | None = None
    ) -> None:
        self.total, self.enabled, self.lines, self.done = total, enabled, lines, 0
        self.stream = stream
        self._tenths = 0

    def step(self, label: str, done: int | None = None) -> None:
        self.done = self.done + 1 if done is None else done
        percent = 100 * self.done // max(self.total, 1)
        if not self.enabled:
            if self.lines and (tenths := 10 * self.done // max(self.total, 1)) > self._tenths:
                self._tenths = tenths
                print(f"  {percent:3d}% {label}", file=self.stream or sys.stdout, flush=True)
            return
        width = 30
        filled = round(width * self.done / max(self.total, 1))
        sys.stdout.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {percent:3d}% {label:<24}")
        sys.stdout.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stdout.write("\n")
            sys.stdout.flush()


class HandoutProgress:
    """The handouts' work as one bar: checking each key against the tape, then printing
    the sheets and the keys part by part (parts finish in any order)."""

    def __init__(self, bar: ProgressBar, count: int) -> None:
        self.bar, self.count = bar, count
        self.printed = {"sheets": 0, "keys": 0}

    @staticmethod
    def total(count: int) -> int:
        return count + 2 * PRINT_WEIGHT * count

    def checked(self, done: int) -> None:
        self.bar.step(f"checked {done}/{self.count} keys against the tape", done)

    def printed_part(self, what: str, sheets: int) -> None:
        self.printed[what] += sheets
        units = self.count + PRINT_WEIGHT * sum(self.printed.values())
        self.bar.step(f"printed {self.printed[what]}/{self.count} {what}", units)


def run_handouts(args: argparse.Namespace) -> int:
    from ..common.i18n import translator
    from ..handouts.files import (
        default_jobs,
        render_files,
        start_workers,
        unprintable_characters,
        warm_up,
    )
    from ..handouts.sheets import validate
    from ..problem.problem import draw_seed
    from ..render.files import check_writable, write_atomically

    say: Callable[[str], None] = (
        (lambda _message: None) if args.quiet else (lambda message: print(message, flush=True))
    )
    lang = translator(args.lang.strip()).lang
    roster = _roster(args)
    count = len(roster) if roster is not None else args.count if args.count is not None else 30
    if roster is None and count < 1:
        raise InputError("--count must be at least 1", count)
    if args.samples is not None and args.samples < 1:
        raise InputError("--samples must be at least 1", args.samples)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        raise InputError("--jobs must be at least 1", args.jobs)
    dataset = _dataset(args)
    loss = _loss(args)
    features = _features(args, dataset)
    # Without --seed a seed is drawn (a fixed default would give every class the same
    # sheets) and said, so that the set can be made again.
    class_seed = args.seed if args.seed is not None else draw_seed()
    samples = validate(count, class_seed, roster, dataset, args.samples or 2, features)
    out = Path(args.out)
    check_writable(out)

    started = time.perf_counter()
    # The workers start (and import WeasyPrint) while this process imports TensorFlow.
    pool = start_workers(jobs)
    try:
        warming = [pool.submit(warm_up, lang) for _ in range(jobs)]
        glyphs = pool.submit(unprintable_characters, roster or [])
        terminal = sys.stdout.isatty()
        bar = ProgressBar(
            HandoutProgress.total(count), terminal and not args.quiet, lines=not args.quiet
        )
        progress = HandoutProgress(bar, count)
        handouts = _build(
            lang, roster, count, class_seed, dataset, samples, say, progress, loss, features
        )
        handouts = _printable_names(handouts, glyphs.result())
        rendered = render_files(handouts, pool, progress.printed_part, jobs)
        bar.finish()
        for job in warming:
            job.result()
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(cancel_futures=True)
    for note in rendered.notes:
        _warn(f"the PDF library noted: {note}")
    written = write_atomically({out / name: data for name, data in rendered.files.items()})
    failed = [sheet for sheet in handouts.sheets if not sheet.ok]
    for sheet in failed:
        what = ", ".join(entry.check.quantity for entry in sheet.checks if not entry.ok)
        say(f"  key {sheet.spec.identifier}: FAIL ({what})")
    elapsed = time.perf_counter() - started
    say(
        f"  wrote {len(written)} files to {out}: {_counted(count, 'sheet')}, "
        f"{_counted(count, 'key')}, sheets.pdf, keys.pdf, index.html"
    )
    say(
        ("every key agrees with the tape" if not failed else f"{len(failed)} KEYS FAIL")
        + f" ({elapsed:.1f} s)"
    )
    return EXIT_OK if not failed else EXIT_CHECK_FAILED


def _stop_workers(pool: Executor) -> None:
    """End the rendering workers now: on an error or a signal their pages are not wanted,
    and shutdown() alone would wait for the page each is printing. The executor has no
    public way to do this before Python 3.14 (terminate_workers)."""
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        process.kill()


def _counted(n: int, noun: str) -> str:
    """'1 sheet', '2 sheets' (the nouns of these lines take an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _roster(args: argparse.Namespace) -> list[str] | None:
    """The roster's names; a name on several rows is said (the sheets then differ only
    by their numbers and identifiers, not by the name printed on them)."""
    from ..handouts.roster import read_roster_entries, repeated_names

    if args.roster is None:
        return None
    if args.count is not None:
        raise InputError("--count cannot be used with --roster (one sheet per name)", args.count)
    entries = read_roster_entries(args.roster)
    for name, rows in repeated_names(entries).items():
        _warn(
            f"the roster has {name!r} on rows {', '.join(map(str, rows))}: their sheets "
            "print the same name; tell them apart by the sheet identifier"
        )
    return [entry.name for entry in entries]


def _loss(args: argparse.Namespace) -> str:
    """--loss, checked before any work starts."""
    from ..models.registry import get_loss

    return get_loss(args.loss.strip()).name  # huber: delta 1, as Keras's default


def _dataset(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The data every sheet shares (--data, --columns, the first --samples rows), or None."""
    from ..problem.datasets import parse_columns, resolve_dataset
    from ..problem.problem import several_features

    columns = parse_columns(args.columns or "x,y")
    if args.data is None:
        if args.columns is not None:
            raise InputError("--columns needs --data with a CSV file", args.columns)
        return None
    dataset = resolve_dataset(args.data, columns=columns)
    if args.samples is None:
        return dataset
    if args.samples > len(dataset.y):
        raise InputError("--samples is more than the data has", args.samples)
    return several_features(
        dataset.name,
        [column[: args.samples] for column in dataset.columns],
        dataset.y[: args.samples],
        dataset.source,
    )


def _printable_names(handouts, unprintable: frozenset[str]):  # type: ignore[no-untyped-def]
    """Characters no font has are printed as their codes; said once for each name."""
    from ..handouts.roster import without_unprintable

    said: set[str] = set()
    for sheet in handouts.sheets:
        name = sheet.spec.student
        missing = sorted({c for c in name or "" if c in unprintable})
        if name is None or not missing or name in said:
            continue
        said.add(name)
        codes = ", ".join(f"U+{ord(c):04X} ({c})" for c in missing)
        _warn(f"no font has {codes} of the name {name!r}: the sheet prints its code instead")
    return without_unprintable(handouts, unprintable)


def _features(args: argparse.Namespace, dataset) -> int:  # type: ignore[no-untyped-def]
    """--features, or the data's own number of features (validate checks the range)."""
    if args.features is None:
        return 1 if dataset is None else dataset.k
    if dataset is not None and dataset.k != args.features:
        raise InputError(f"--features does not match the data's {dataset.k}", args.features)
    return args.features


def _build(lang, roster, count, class_seed, dataset, samples, say, progress, loss, features=1):  # type: ignore[no-untyped-def]
    from ..handouts.sheets import build_handouts

    say(
        f"derive handouts: {_counted(count, 'sheet')}, class seed {class_seed} "
        f"(--seed {class_seed} makes the same set again), {lang}"
        + ("" if loss == DEFAULT_LOSS else f", loss {loss}")
        + ("" if features == 1 else f", {features} features")
    )
    return build_handouts(
        count,
        class_seed=class_seed,
        roster=roster,
        dataset=dataset,
        samples=samples,
        lang=lang,
        progress=progress.checked,
        loss=loss,
        features=features,
    )

"""``python -m derive handouts``: validate, build the class set, render, write."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from .errors import EXIT_CHECK_FAILED, EXIT_OK, InputError


class ProgressBar:
    """A one-line bar on a terminal; silent when the output is not one."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.done = total, enabled, 0

    def step(self, label: str, done: int | None = None) -> None:
        if not self.enabled:
            return
        self.done = self.done + 1 if done is None else done
        width = 30
        filled = round(width * self.done / self.total)
        sys.stdout.write(
            f"\r  [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label:<12}"
        )
        sys.stdout.flush()

    def finish(self) -> None:
        if self.enabled:
            sys.stdout.write("\n")
            sys.stdout.flush()


def run_handouts(args: argparse.Namespace) -> int:
    from .handout_files import start_workers, warm_up
    from .handouts import read_roster, validate
    from .i18n import translator
    from .render import check_writable, write_atomically

    say: Callable[[str], None] = (
        (lambda _message: None) if args.quiet else (lambda message: print(message, flush=True))
    )
    lang = translator(args.lang.strip()).lang
    roster = read_roster(args.roster) if args.roster else None
    count = len(roster) if roster is not None else args.count
    if roster is None and args.count < 1:
        raise InputError("--count must be at least 1", args.count)
    if args.samples is not None and args.samples < 1:
        raise InputError("--samples must be at least 1", args.samples)
    dataset = None
    if args.data is not None:
        from .datasets import resolve_dataset

        dataset = resolve_dataset(args.data)
        if args.samples is not None:
            if args.samples > len(dataset.x):
                raise InputError("--samples is more than the data has", args.samples)
            dataset = type(dataset)(
                dataset.name, dataset.x[: args.samples], dataset.y[: args.samples], dataset.source
            )
    samples = validate(count, args.seed, roster, dataset, args.samples or 2)
    out = Path(args.out)
    check_writable(out)

    started = time.perf_counter()
    # The workers start (and import WeasyPrint) while this process imports TensorFlow.
    pool = start_workers()
    try:
        warming = [pool.submit(warm_up, lang) for _ in range(2)]
        handouts, files = _build_and_render(args, lang, roster, count, dataset, samples, pool, say)
        for job in warming:
            job.result()
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(cancel_futures=True)
    written = write_atomically({out / name: data for name, data in files.items()})
    failed = [sheet for sheet in handouts.sheets if not sheet.ok]
    for sheet in failed:
        what = ", ".join(entry.check.quantity for entry in sheet.checks if not entry.ok)
        say(f"  key {sheet.spec.identifier}: FAIL ({what})")
    elapsed = time.perf_counter() - started
    say(
        f"  wrote {len(written)} files to {out}: {count} sheets, {count} keys, "
        "sheets.pdf, keys.pdf, index.html"
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


def _build_and_render(args, lang, roster, count, dataset, samples, pool, say):  # type: ignore[no-untyped-def]
    from .handout_files import render_files
    from .handouts import build_handouts

    bar = ProgressBar(count + 2, sys.stdout.isatty() and not args.quiet)
    say(f"derive handouts: {count} sheets, class seed {args.seed}, {lang}")
    handouts = build_handouts(
        count,
        class_seed=args.seed,
        roster=roster,
        dataset=dataset,
        samples=samples,
        lang=lang,
        progress=lambda done: bar.step("checking", done),
    )
    files = render_files(handouts, pool, lambda what: bar.step(what))
    bar.finish()
    return handouts, files

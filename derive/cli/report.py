"""The report command: the Problem from the parsed options, the stability warning, the
pipeline (training beside the draft), the files written, the terminal lines and the exit
code."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..common.errors import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    InputError,
)
from ..models.registry import DEFAULT_LOSS
from .lines import check_lines, stability_lines, summary_line, training_lines
from .parser import parse_formats, parse_init, parse_lang, parse_stem

if TYPE_CHECKING:
    from .background import TrainingJob


def _inline_features(given: list[str] | None) -> list[tuple[float, ...]] | None:
    """--x, once per feature: each its own column of values."""
    from ..problem.datasets import parse_number_list

    if given is None:
        return None
    if len(given) == 1:
        return [parse_number_list(given[0], "--x")]
    return [parse_number_list(text, f"--x (feature {j})") for j, text in enumerate(given, start=1)]


def run_report(args: argparse.Namespace, job: TrainingJob) -> int:
    from ..problem.datasets import parse_columns, parse_number_list, resolve_dataset
    from ..problem.problem import DTYPES, Training, make_problem
    from .progress import Progress

    say = (lambda _message: None) if args.quiet else (lambda message: print(message, flush=True))
    progress = Progress.quiet() if args.quiet else Progress()
    formats = parse_formats(args.format)
    lang = parse_lang(args.lang)
    if args.dtype not in DTYPES:
        raise InputError("unknown dtype; choose " + " or ".join(DTYPES), args.dtype)
    columns = parse_columns(args.columns)
    x = _inline_features(args.x)
    y = parse_number_list(args.y, "--y") if args.y is not None else None
    dataset = resolve_dataset(args.data, x, y, columns)  # type: ignore[arg-type]
    init = parse_init(args.init) if args.init is not None else None
    problem = make_problem(
        dataset,
        dtype=args.dtype,
        init=init,
        seed=args.seed,
        training=Training(args.steps, args.lr, args.display_step),
        standardize=args.standardize,
        mode=args.mode,
        loss=args.loss,
        huber_delta=args.huber_delta,
    )
    stem = parse_stem(args.name) if args.name is not None else parse_stem(problem.name)
    if args.wrong_derivative is not None:
        kinds = problem.loss_entry.wrong_derivatives
        if args.wrong_derivative not in kinds:
            raise InputError(
                f"unknown kind of wrong derivative for --loss {problem.loss}; choose "
                + ", ".join(kinds),
                args.wrong_derivative,
            )
    out = Path(args.out)

    started = time.perf_counter()
    from ..render.files import check_writable, write_atomically
    from .pipeline import run

    check_writable(out, [out / f"{stem}.{fmt}" for fmt in formats])
    say(
        f"derive: {problem.name}, n = {problem.n}, {problem.dtype}, initial "
        + ", ".join(f"{k} = {v:.8g}" for k, v in problem.initial.values.items())
        + (f" (seed {problem.initial.seed})" if problem.initial.seed is not None else " (pinned)")
        + f"; {problem.training.steps} steps, learning rate {problem.training.learning_rate:g}"
        + ("; trained on z-scores of x and y" if problem.standardized is not None else "")
        + ("" if problem.mode == "eager" else f"; the tape runs in mode {problem.mode}")
        + ("" if problem.loss == DEFAULT_LOSS else f"; loss {problem.loss}")
    )
    if problem.training.steps > 0:
        for line in stability_lines(problem):
            say(line)
    report, contents = run(
        job, problem, args.wrong_derivative, formats, progress,
        lang=lang, backward=not args.no_backward,
    )  # fmt: skip
    job.close()
    progress.stage("writing")
    written = write_atomically({out / f"{stem}.{fmt}": data for fmt, data in contents.items()})
    progress.clear()
    for check, source in zip(report.checks, report.reference_labels, strict=True):
        for line in check_lines(check, str(source)):
            say(line)
    if report.training is not None:
        for line in training_lines(report.training):
            say(line)
    if report.backward is not None:
        say(
            f"  backward: {len(report.backward.checked)} nodes, the tape's adjoints vs the "
            "chain rule  " + ("pass" if report.backward.ok else "FAIL")
        )
        for failure in report.backward.failures:
            say(f"    {failure}")
    for path in written:
        say(f"  wrote {path}")
    elapsed = time.perf_counter() - started
    say(summary_line(report) + f" ({elapsed:.1f} s)")
    return EXIT_OK if report.ok else EXIT_CHECK_FAILED

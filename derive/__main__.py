"""Command line: ``python -m derive report``.

main(argv) only parses and calls the library; errors become one line on stderr and
an exit code here, in one place.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import (
    EXIT_CHECK_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    DeriveError,
    InputError,
    breaks_lines,
)

if TYPE_CHECKING:
    from .background import TrainingJob

EXAMPLES = """\
examples:
  python -m derive report
      the two-sample data of the original script, random initial values, HTML + PDF in reports/
  python -m derive report --data single --init W=0.21318328,b=0.78609025 --format json,html,pdf
      one sample, pinned initial values: dL/dW = -1.388673, dL/db = -0.420810
  python -m derive report --data tf-examples --seed 7
      the 17-point tutorial data, reproducible initial values
  python -m derive report --x 3.3,1 --y 1.7,2 --dtype float64
  python -m derive report --data points.csv --out handouts --name week3
  python -m derive report --wrong-derivative drop-factor-2
      show that a derivative without the factor 2 fails the check (exit code 1)
  python -m derive report --no-backward
      leave out section 7, the tape's backward pass node by node
  python -m derive report --data tf-examples --steps 200 --lr 0.02 --display-step 20
      train 200 steps, check every one, a table row every 20 steps
  python -m derive report --data tf-examples --lr 1.5
      a learning rate that diverges: the report shows where (exit code 1)
  python -m derive report --data big-values.csv --standardize
      train on z-scores of x and y (large values diverge at --lr 0.01 otherwise);
      the fitted line is also given in the data's own units

exit codes: 0 every check passed, 1 a check failed, 2 bad input, 3 internal error
"""

# lambda_max / lambda_min beyond which --standardize is worth suggesting
ILL_CONDITIONED = 100.0


def _init_values(text: str) -> dict[str, float]:
    if not text.strip():  # an empty --init is a mistake, not a request for random values
        raise InputError("--init is empty; give NAME=VALUE pairs such as W=0.2,b=0.7", repr(text))
    values: dict[str, float] = {}
    for item in text.split(","):
        name, sep, number = item.partition("=")
        name, number = name.strip(), number.strip()
        if not sep or not name:
            raise InputError("--init expects NAME=VALUE pairs such as W=0.2,b=0.7", item)
        try:
            values[name] = float(number)
        except ValueError:
            raise InputError(
                f"--init value for {name} is not a number", number or "empty"
            ) from None
    return values


def _formats(text: str) -> list[str]:
    from .render import FORMATS

    formats = [item.strip().lower() for item in text.split(",") if item.strip()]
    if not formats:
        raise InputError("--format is empty; choose from " + ",".join(FORMATS), text)
    for item in formats:
        if item not in FORMATS:
            raise InputError("unknown format; choose from " + ",".join(FORMATS), item)
    return list(dict.fromkeys(formats))


def _stem(text: str) -> str:
    if any(map(breaks_lines, text)):
        # A newline or an escape sequence in a file name breaks listings and scripts.
        raise InputError("--name must not contain control characters or line breaks", text)
    if not text or text in {".", ".."} or re.search(r"[/\\\0]", text):
        raise InputError("--name must be a file name without a path separator", text)
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own usage errors are bad input too: one line, exit 2.
        raise InputError("invalid command line", message)


def build_parser() -> argparse.ArgumentParser:
    from .problem import BUILTIN_DATASETS

    parser = _Parser(
        prog=program_name(),
        description="Explain, with proof, how tf.GradientTape arrives at its gradients.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    parser.add_argument("--version", action="version", version=f"derive {_version()}")
    _add_debug(parser, default=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    report = commands.add_parser(
        "report",
        help="derive, substitute and check the gradient; write HTML, PDF and JSON",
        description="Derive dL/dW and dL/db with SymPy, evaluate them at TensorFlow's "
        "initial values, check them against tf.GradientTape, and write the report.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    data = report.add_argument_group("data")
    data.add_argument(
        "--data",
        default=None,  # None: not given, so --x and --y may stand in; resolved to seed later
        metavar="NAME|FILE.csv",
        help="built-in data set (" + ", ".join(BUILTIN_DATASETS) + "; default seed), "
        "a CSV file with a header (, ; or tab separated), or - for CSV on standard input; "
        "not together with --x and --y",
    )
    data.add_argument("--x", metavar="X1,X2,...", help="inline x values (with --y)")
    data.add_argument("--y", metavar="Y1,Y2,...", help="inline y values (with --x)")
    data.add_argument(
        "--columns", default="x,y", metavar="COLX,COLY", help="CSV columns to use (default x,y)"
    )
    setup = report.add_argument_group("initial values and arithmetic")
    setup.add_argument(
        "--init", metavar="W=VALUE,b=VALUE", help="pin the initial values (default: random)"
    )
    setup.add_argument(
        "--seed", type=int, help="seed for the random initial values (default: drawn, recorded)"
    )
    setup.add_argument("--dtype", default="float32", help="float32 (default) or float64")
    setup.add_argument(
        "--mode",
        default="eager",
        help="run the tape eagerly (default), in a tf.function (function), "
        "or in tf.function(jit_compile=True) (xla)",
    )
    setup.add_argument(
        "--wrong-derivative",
        metavar="KIND",
        help="demonstration: use a deliberately wrong derivative "
        "(drop-factor-2, drop-mean, x-for-y) and watch the check fail",
    )
    setup.add_argument(
        "--no-backward",
        action="store_true",
        help="leave out the tape's backward pass, node by node (shown by default)",
    )
    training = report.add_argument_group("training (SGD, as the original script)")
    training.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="training steps to run and check (default 1000; 0: the initial check only)",
    )
    training.add_argument(
        "--lr", type=float, default=0.01, metavar="ETA", help="learning rate (default 0.01)"
    )
    training.add_argument(
        "--display-step",
        type=int,
        default=50,
        metavar="K",
        help="a table row every K steps (default 50); every step is checked regardless",
    )
    training.add_argument(
        "--standardize",
        action="store_true",
        help="train on z-scores (v - mean) / std of x and of y; the fitted line is also "
        "reported in the data's own units",
    )
    output = report.add_argument_group("output")
    output.add_argument(
        "--format", default="html,pdf", help="comma-separated: html, pdf, json (default html,pdf)"
    )
    output.add_argument("--out", default="reports", help="output folder (default reports)")
    output.add_argument("--name", help="file name stem (default: the data set's name)")
    output.add_argument(
        "--quiet", action="store_true", help="print nothing but errors (and no progress bar)"
    )
    _add_lang(output)
    _add_debug(output, default=argparse.SUPPRESS)
    _add_handouts(commands)
    return parser


def program_name() -> str:
    """``derive`` when run as the console script, ``python -m derive`` otherwise (as a
    module, argv[0] is the path of __main__.py; from Python, it is the caller's)."""
    return "derive" if Path(sys.argv[0]).name == "derive" else "python -m derive"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("derive")
    except PackageNotFoundError:  # a source tree that was never installed
        return "(version unknown: not installed)"


def _add_debug(group: argparse._ActionsContainer, default: object) -> None:
    # Accepted before and after the command; SUPPRESS keeps the command's parser from
    # resetting a --debug given before it.
    group.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help="also print the traceback of an internal error (exit codes stay the same)",
    )


HANDOUT_EXAMPLES = """\
examples:
  python -m derive handouts --count 30 --seed 7
      30 exercise sheets with two samples each, their answer keys, combined PDFs, index.html
  python -m derive handouts --roster class.csv --lang ko --out week3
      one sheet per name in the CSV's 'name' column, in Korean
  python -m derive handouts --count 10 --data seed
      every sheet with the original script's two samples, each with its own W and b
  python -m derive handouts --count 12 --data points.csv --columns hours,score --samples 3
      the first three rows of the CSV's columns hours and score on every sheet

exit codes: 0 every key agrees with the tape, 1 a key does not, 2 bad input, 3 internal error
"""


def _add_handouts(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .handouts import MAX_SAMPLES

    handouts = commands.add_parser(
        "handouts",
        help="exercise sheets with blanks and their answer keys, checked against the tape",
        description="Make one exercise sheet per student (own samples, own W and b) and "
        "its answer key; every key value is checked against tf.GradientTape.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=HANDOUT_EXAMPLES,
    )
    handouts.add_argument(
        "--count", type=int, default=None, help="number of sheets (default 30; not with --roster)"
    )
    handouts.add_argument(
        "--seed",
        type=int,
        default=None,
        help="class seed: the same seed gives the same handouts (default: drawn, and printed "
        "with the files)",
    )
    handouts.add_argument(
        "--roster",
        metavar="NAMES.csv",
        help="CSV with a 'name' column: one sheet per student (the roster sets the count, "
        "so --count is refused with it)",
    )
    handouts.add_argument(
        "--data",
        metavar="NAME|FILE.csv",
        help="the same samples on every sheet (default: drawn for each sheet)",
    )
    handouts.add_argument(
        "--columns",
        metavar="COLX,COLY",
        help="with --data FILE.csv: the CSV columns holding x and y (default x,y)",
    )
    handouts.add_argument(
        "--samples",
        type=int,
        default=None,
        help=f"samples drawn per sheet, 1 to {MAX_SAMPLES} (default 2)",
    )
    handouts.add_argument("--out", default="handouts", help="output folder (default handouts)")
    handouts.add_argument(
        "--quiet", action="store_true", help="print nothing but warnings and errors"
    )
    _add_lang(handouts)
    _add_debug(handouts, default=argparse.SUPPRESS)


def _add_lang(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--lang",
        default="en",
        metavar="LANG",
        help="language of the report: en (default) or ko",
    )


def _lang(text: str) -> str:
    from .i18n import translator

    return translator(text.strip()).lang


def run_report(args: argparse.Namespace, job: TrainingJob) -> int:
    from .datasets import parse_columns, parse_number_list, resolve_dataset
    from .problem import DTYPES, Training, make_problem
    from .progress import Progress

    say = (lambda _message: None) if args.quiet else (lambda message: print(message, flush=True))
    progress = Progress.quiet() if args.quiet else Progress()
    formats = _formats(args.format)
    lang = _lang(args.lang)
    if args.dtype not in DTYPES:
        raise InputError("unknown dtype; choose " + " or ".join(DTYPES), args.dtype)
    columns = parse_columns(args.columns)
    x = parse_number_list(args.x, "--x") if args.x is not None else None
    y = parse_number_list(args.y, "--y") if args.y is not None else None
    dataset = resolve_dataset(args.data, x, y, columns)  # type: ignore[arg-type]
    init = _init_values(args.init) if args.init is not None else None
    problem = make_problem(
        dataset,
        dtype=args.dtype,
        init=init,
        seed=args.seed,
        training=Training(args.steps, args.lr, args.display_step),
        standardize=args.standardize,
        mode=args.mode,
    )
    stem = _stem(args.name) if args.name is not None else _stem(problem.name)
    if args.wrong_derivative is not None:
        from .symbolic import WRONG_DERIVATIVES

        if args.wrong_derivative not in WRONG_DERIVATIVES:
            raise InputError(
                "unknown kind of wrong derivative; choose " + ", ".join(WRONG_DERIVATIVES),
                args.wrong_derivative,
            )
    out = Path(args.out)

    started = time.perf_counter()
    from .pipeline import run
    from .render import check_writable, write_atomically

    check_writable(out, [out / f"{stem}.{fmt}" for fmt in formats])
    say(
        f"derive: {problem.name}, n = {problem.n}, {problem.dtype}, initial "
        + ", ".join(f"{k} = {v:.8g}" for k, v in problem.initial.values.items())
        + (f" (seed {problem.initial.seed})" if problem.initial.seed is not None else " (pinned)")
        + f"; {problem.training.steps} steps, learning rate {problem.training.learning_rate:g}"
        + ("; trained on z-scores of x and y" if problem.standardized is not None else "")
        + ("" if problem.mode == "eager" else f"; the tape runs in mode {problem.mode}")
    )
    if problem.training.steps > 0:
        for line in _stability_lines(problem):
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
        for line in _training_lines(report.training):
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


VERDICT_WORDS = {"pass": "pass", "fail": "FAIL", "inconclusive": "INCONCLUSIVE",
                 "overflow": "OVERFLOW"}  # fmt: skip


def _percent(share: float) -> str:
    """A share of the bound as a percentage: 7.2 %, 0.031 %, 2.8e-08 %."""
    if not math.isfinite(share):
        return "inf"
    percent = 100 * share
    return f"{percent:.2g} %" if percent >= 1e-3 or percent == 0 else f"{percent:.1e} %"


def check_lines(check, source: str) -> list[str]:  # type: ignore[no-untyped-def]
    """One checked value on the terminal, one unit a line: the two numbers; the
    difference against the tolerance and the share of the bound it uses, with the
    verdict; the error in u*M, then in ULPs with the condition number beside them; and
    the reason for an inconclusive or overflow verdict."""
    from .check import verdict_reason

    pad = " " * 11
    lines = [
        f"  {check.quantity:<8} {source + ':':<12} {check.reference:>+17.9g}   "
        f"tape: {check.tape:>+17.9g}"
    ]
    verdict = VERDICT_WORDS[check.verdict]
    if math.isfinite(check.tape):
        lines.append(
            f"{pad}difference {check.abs_error:.2g}, tolerance {check.tolerance:.2g}: "
            f"uses {_percent(check.used)} of its bound   {verdict}"
        )
        lines.append(
            f"{pad}error {check.error_um:.3g} u*M;  {check.ulps:.3g} ULP at "
            f"condition M/|value| = {check.condition:.3g}"
        )
    else:
        lines.append(f"{pad}the tape's value is not finite (tolerance {check.tolerance:.2g})   "
                     f"{verdict}")  # fmt: skip
    reason = verdict_reason(check)
    if reason is not None:
        lines.append(f"{pad}{check.verdict}: {reason}")
    return lines


def _values(count: int) -> str:
    return f"{count} value" + ("" if count == 1 else "s")


def summary_line(report) -> str:  # type: ignore[no-untyped-def]
    """The last line: never "all checks passed" while a value is inconclusive."""
    verdict = report.verdict
    if verdict == "pass":
        return "all checks passed"
    if verdict == "fail":
        return "SOME CHECKS FAILED"
    where = []
    kind = "inconclusive" if verdict == "inconclusive" else "overflowed"
    names = [c.quantity for c in report.checks if getattr(c, kind)]
    if names:
        where.append(", ".join(names))
    count = getattr(report, kind)
    backward = report.backward and getattr(report.backward, kind)
    training = report.training and getattr(
        report.training, "inconclusive_checks" if kind == "inconclusive" else "overflowed_checks"
    )
    # A part that holds every such value is named without repeating the count.
    if backward:
        where.append(
            "all in the backward pass"
            if backward == count
            else f"{_values(backward)} of the backward pass"
        )
    if training:
        where.append("all in training" if training == count else f"{_values(training)} in training")
    if verdict == "inconclusive":
        return (
            f"no check failed; {_values(count)} {'is' if count == 1 else 'are'} inconclusive: "
            + "; ".join(where)
            + " (within a bound of at least half the value: a value off by a factor 2 would "
            "pass as well)"
        )
    return (
        f"OVERFLOW: {_values(count)} left {report.problem.dtype}'s range: "
        + "; ".join(where)
        + " (no check failed otherwise)"
    )


def _stability_lines(problem) -> list[str]:  # type: ignore[no-untyped-def]
    """Before training: a learning rate at or above 2 / lambda_max, or too few steps."""
    from .report import symbolic_for
    from .stability import stability

    found = stability(problem, symbolic_for(problem))
    where = " at the initial values" if found.local else ""
    remedy = "" if problem.standardized is not None else " or --standardize"
    if found.stable_lr is not None and not found.stable:
        return [
            f"  WARNING: learning rate {found.learning_rate:g} is {found.ratio:.3g} times the "
            f"stable limit 2/lambda_max = {found.stable_lr:.3g}{where} (lambda_max = "
            f"{found.lambda_max:.3g}, the largest eigenvalue of the loss's Hessian): "
            f"training will diverge; try --lr {found.suggested_lr:g}{remedy}"
        ]
    if found.too_few_steps:
        return [
            f"  note: the slowest direction needs about {found.steps_needed:.2g} steps at "
            f"learning rate {found.learning_rate:g} to shrink its error by "
            f"{found.tolerance:g} (lambda_max/lambda_min = {found.condition:.3g}{where}); "
            f"after {found.steps} steps {found.remaining:.2g} of it is left"
            + ("; try --standardize" if remedy and found.condition > ILL_CONDITIONED else "")
        ]
    return []


def _training_lines(training) -> list[str]:  # type: ignore[no-untyped-def]
    final = ", ".join(f"{k} = {v:.8g}" for k, v in training.final.items())
    lines = [
        f"  training: {training.steps_checked} of {training.steps} steps checked "
        f"({training.checks_made} values)"
    ]
    if training.most_used is not None:
        used = training.most_used.check
        lines.append(
            f"    worst uses {_percent(training.max_used)} of its bound: {used.quantity}, "
            f"step {training.most_used.step} (error {used.error_um:.3g} u*M)"
        )
    if training.worst is not None:
        worst = training.worst.check
        lines.append(
            f"    largest in ULPs: {training.max_ulps:.3g} ULP ({worst.quantity}, step "
            f"{training.worst.step}, at condition M/|value| = {worst.condition:.3g})"
        )
    if training.first_inconclusive is not None:
        first = training.first_inconclusive
        lines.append(
            f"    inconclusive: {_values(training.inconclusive_checks)}, the first "
            f"{first.check.quantity} at step {first.step}: its bound is "
            f"{first.check.resolution:.3g} times the value"
        )
    lines.append(f"  after step {training.final_step}: {final}, loss = {training.final_loss:.8g}")
    if training.first_failure is not None:
        check = training.first_failure.check
        lines.append(
            f"  FIRST FAILING CHECK at step {training.first_failure.step}: {check.quantity} "
            f"uses {_percent(check.used)} of its bound (difference {check.abs_error:.2g}, "
            f"tolerance {check.tolerance:.2g}; {check.ulps:.3g} ULP)"
        )
    if training.diverged_at is not None:
        lines.append(
            f"  DIVERGED: values became non-finite at step {training.diverged_at}; "
            "checking stopped there" + _stable_rate_hint(training)
        )
    return lines


def _stable_rate_hint(training) -> str:  # type: ignore[no-untyped-def]
    found = training.stability
    if found is None or found.stable_lr is None:
        return ""
    return (
        f"; learning rates below 2/lambda_max = {found.stable_lr:.3g} are stable "
        f"(try --lr {found.suggested_lr:g}"
        + ("" if training.standardized is not None else " or --standardize")
        + ")"
    )


def _start_training(arguments: Sequence[str]) -> TrainingJob | None:
    """Importing TensorFlow takes seconds, so the process that trains starts before
    anything else, before the command line is even read; it waits for its problem.
    An invalid command line just ends it again."""
    if "report" not in arguments or {"-h", "--help"} & set(arguments):
        return None
    from .background import TrainingJob

    return TrainingJob()


def main(argv: Sequence[str] | None = None) -> int:
    from .signals import Interrupted, raised_as_exceptions, take_written

    arguments = list(sys.argv[1:] if argv is None else argv)
    take_written()
    try:
        # SIGTERM and SIGHUP unwind the run as Ctrl-C does: every clean-up runs.
        with raised_as_exceptions():
            return _command(arguments)
    except (Interrupted, KeyboardInterrupt) as interrupt:
        signal_name, code = (
            (interrupt.name, interrupt.exit_code)
            if isinstance(interrupt, Interrupted)
            else ("SIGINT", 128 + 2)
        )
        _error_line(f"interrupted by {signal_name} ({_what_was_written(take_written())})")
        return code


def _what_was_written(written: Sequence[Path]) -> str:
    if not written:
        return "no file was written or changed"
    return f"after writing {len(written)} files in full: " + ", ".join(map(str, written))


def _command(arguments: list[str]) -> int:
    from .signals import deferred

    job: TrainingJob | None = None
    debug = "--debug" in arguments  # until the command line is read
    try:
        with deferred():  # a training process started is one recorded here, and ended
            job = _start_training(arguments)
        parser = build_parser()
        args = parser.parse_args(arguments)
        debug = args.debug
        if args.command is None:
            parser.print_usage(sys.stderr)
            raise InputError("no command given; choose report or handouts", "none")
        if args.command == "handouts":
            from .handout_cli import run_handouts

            return run_handouts(args)
        if job is None:
            from .background import TrainingJob

            with deferred():
                job = TrainingJob()
        return run_report(args, job)
    except SystemExit as finished:  # --help and --version print and finish here
        return finished.code if isinstance(finished.code, int) else EXIT_OK
    except DeriveError as error:
        if debug and error.exit_code == EXIT_INTERNAL:
            traceback.print_exc()
        _error_line(str(error))
        return error.exit_code
    except Exception as error:  # the one place where unexpected errors become a message
        if debug:
            traceback.print_exc()
        _error_line(
            f"internal error: {type(error).__name__}: {error}"
            + ("" if debug else " (run again with --debug for the traceback)")
        )
        return EXIT_INTERNAL
    finally:
        if job is not None:
            job.close()


def _error_line(message: str) -> None:
    from .progress import erase_bar

    erase_bar()  # a progress bar on the terminal would swallow the start of the line
    print(f"error: {message}", file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    code = main()
    # Every file is written and synced, the training process has ended: flush the two
    # streams and leave, without the interpreter tearing SymPy, WeasyPrint and NumPy
    # down object by object (a quarter of a second).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""The command line's grammar: the report and handouts commands, their options, the
checks each value gets as it is parsed (bad input is refused here, naming the field),
the usage and the version."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..common.errors import (
    InputError,
    breaks_lines,
)
from ..models.registry import DEFAULT_LOSS

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
  python -m derive report --data flats --init W_1=0.3,W_2=-0.2,b=0.1
      two features: tf.matmul(X, W) + b with a (2, 1) kernel
  python -m derive report --x 1,2,3 --x=-0.5,1,2 --y 1,0,2 --loss mae --seed 7
      --x once per feature (a first value below 0 needs --x=...)
  python -m derive report --data diabetes --standardize
      442 patients, three features on very different scales, trained on z-scores
  python -m derive report --wrong-derivative drop-factor-2
      show that a derivative without the factor 2 fails the check (exit code 1)
  python -m derive report --data tf-examples --loss mae --seed 7
      the mean absolute error: its derivative is sign(r), TensorFlow's sign(0) = 0
  python -m derive report --data tf-examples --loss huber --huber-delta 0.5 --seed 7
      tf.keras.losses.Huber(0.5): which samples fall in which branch, and the ops Keras records
  python -m derive report --no-backward
      leave out section 7, the tape's backward pass node by node
  python -m derive report --data tf-examples --steps 200 --lr 0.02 --display-step 20
      train 200 steps, check every one, a table row every 20 steps
  python -m derive report --data tf-examples --lr 1.5
      a learning rate that diverges: the report shows where (exit code 1)
  printf 'x,y\\n860,176000\\n1320,259000\\n1780,342000\\n2480,468000\\n' > big.csv
  python -m derive report --data big.csv --standardize
      train on z-scores of x and y (large values diverge at --lr 0.01 otherwise);
      the fitted line is also given in the data's own units

exit codes: 0 every check passed, 1 a check failed, 2 bad input, 3 internal error
"""


def parse_init(text: str) -> dict[str, float]:
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


def parse_formats(text: str) -> list[str]:
    from ..render.outputs import FORMATS

    formats = [item.strip().lower() for item in text.split(",") if item.strip()]
    if not formats:
        raise InputError("--format is empty; choose from " + ",".join(FORMATS), text)
    for item in formats:
        if item not in FORMATS:
            raise InputError("unknown format; choose from " + ",".join(FORMATS), item)
    return list(dict.fromkeys(formats))


def parse_stem(text: str) -> str:
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
    from ..problem.problem import BUILTIN_DATASETS

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
        description="Derive dL/dW and dL/db (dL/dW_1 ... dL/dW_k with several features) with "
        "SymPy, evaluate them at TensorFlow's initial values, check them against "
        "tf.GradientTape, and write the report.",
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
    data.add_argument(
        "--x",
        action="append",
        metavar="X1,X2,...",
        help="inline x values (with --y); repeat once per feature for several features",
    )
    data.add_argument("--y", metavar="Y1,Y2,...", help="inline y values (with --x)")
    data.add_argument(
        "--columns",
        default="x,y",
        metavar="COLX,...,COLY",
        help="CSV columns to use: the features, then y (default x,y; x1,x2,y for two features)",
    )
    setup = report.add_argument_group("initial values and arithmetic")
    setup.add_argument(
        "--init",
        metavar="W=VALUE,b=VALUE",
        help="pin the initial values, one NAME=VALUE for each parameter: W and b, or "
        "W_1 ... W_k and b with k features (default: random)",
    )
    setup.add_argument(
        "--seed", type=int, help="seed for the random initial values (default: drawn, recorded)"
    )
    setup.add_argument("--dtype", default="float32", help="float32 (default) or float64")
    _add_loss(setup)
    setup.add_argument(
        "--huber-delta",
        type=float,
        default=None,
        metavar="D",
        help="with --loss huber: the threshold delta of tf.keras.losses.Huber(delta) "
        "(default 1.0, as Keras)",
    )
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
        "(drop-factor-2, drop-mean, x-for-y; with --loss mae or huber: r-for-sign, "
        "flip-sign, drop-mean, x-for-y) and watch the check fail",
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
  python -m derive handouts --count 200 --jobs 4 > log.txt
      print with four processes; a line in the log each time a tenth is done
  python -m derive handouts --count 10 --features 2
      two features per sample: the students work out r_i, its square, the shares of
      W_1, W_2 and b, the means and one step
  python -m derive handouts --count 10 --loss mae
      the mean absolute error: signs of the residuals instead of their doubles

exit codes: 0 every key agrees with the tape, 1 a key does not, 2 bad input, 3 internal error
"""


def _add_handouts(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from ..handouts.facts import MAX_SAMPLES

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
        metavar="COLX,...,COLY",
        help="with --data FILE.csv: the CSV columns holding the features (one or two) and, "
        "last, y (default x,y)",
    )
    handouts.add_argument(
        "--features",
        type=int,
        default=None,
        metavar="K",
        help="features drawn per sample, 1 or 2: tf.matmul(X, W) + b with W_1, W_2 for 2 "
        "(default 1; with --data, the data's own)",
    )
    handouts.add_argument(
        "--samples",
        type=int,
        default=None,
        help=f"samples drawn per sheet, 1 to {MAX_SAMPLES} (2 with two features; default 2)",
    )
    _add_loss(handouts)
    handouts.add_argument("--out", default="handouts", help="output folder (default handouts)")
    handouts.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="processes that print the PDFs (default: one per core)",
    )
    handouts.add_argument(
        "--quiet", action="store_true", help="print nothing but warnings and errors"
    )
    _add_lang(handouts)
    _add_debug(handouts, default=argparse.SUPPRESS)


def _add_loss(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--loss",
        default=DEFAULT_LOSS,
        metavar="LOSS",
        help="mse (default): tf.reduce_mean(tf.square(y_pred - y)); mae: "
        "tf.reduce_mean(tf.abs(y_pred - y)); huber: "
        "tf.keras.losses.Huber(delta)(y, y_pred)",
    )


def _add_lang(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--lang",
        default="en",
        metavar="LANG",
        help="language of the report: en (default) or ko",
    )


def parse_lang(text: str) -> str:
    from ..common.i18n import translator

    return translator(text.strip()).lang

"""The command line: bad input is one line and exit 2, and touches no file."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from derive.cli.main import main
from derive.problem.problem import MAX_STEPS
from tests.interrupted import signal_when_paused


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "seed.html").write_text("an earlier report")
    return folder


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


# However long the input, a message fits a few lines of a terminal.
MESSAGE_LENGTH = 240

BAD_INPUTS = [
    # (arguments, words the message must contain, the offending value it must show)
    (["--x", "1,2,3", "--y", "1,2"], "different lengths", "3 x, 2 y"),
    (["--x", "", "--y", ""], "--x item 1 is not a number", "empty"),
    (["--x", "1,abc", "--y", "1,2"], "--x item 2 is not a number", "abc"),
    (["--x", "1,nan", "--y", "1,2"], "not a finite number", "nan"),
    (["--x", "1,inf", "--y", "1,2"], "not a finite number", "inf"),
    (["--x", "1,1e39", "--y", "1,2"], "x of sample 2 overflows float32", "1e+39"),
    (["--init", "W=1e39,b=0"], "--init value for W overflows float32", "1e+39"),
    (["--x", "1" * 100_000, "--y", "1"], "--x item 1 is not a finite number", "100,000 characters"),
    (["--seed", "1" * 100_000], "invalid int value", "characters"),
    (["--init", "W" * 100_000 + "=abc,b=1"], "WWW is not a number", "abc"),
    (["--data", "single", "--x", "1", "--y", "2"], "--data cannot be combined with --x", "single"),
    (["--data", "seed", "--x", "1"], "--data cannot be combined with --x", "seed"),
    (["--init", ""], "--init is empty", "''"),
    (["--init", " "], "--init is empty", "' '"),
    (["--name", "a\nb"], "--name must not contain control characters", "a\\nb"),
    (["--name", "red\x1b[31m"], "--name must not contain control characters", "red\\x1b[31m"),
    (["--x", "1,2"], "needs both --x and --y", "only one given"),
    (["--data", "nosuchset"], "unknown data set", "nosuchset"),
    (["--data", "missing.csv"], "data file not found", "missing.csv"),
    (["--dtype", "float16"], "unknown dtype", "float16"),
    (["--format", "html,docx"], "unknown format", "docx"),
    (["--init", "W=0.2,c=0.7"], "unknown parameter in --init", "c"),
    (["--init", "W=0.2"], "missing", "b"),
    (["--init", "W=abc,b=1"], "--init value for W is not a number", "abc"),
    (["--init", "W"], "NAME=VALUE", "W"),
    (["--seed", "-1"], "--seed must be between", "-1"),
    (["--seed", "x"], "invalid command line", "invalid int value"),
    (["--name", "a/b"], "--name must be a file name", "a/b"),
    (["--wrong-derivative", "typo"], "unknown kind of wrong derivative", "typo"),
    (["--loss", "hinge"], "unknown --loss; choose mse, mae, huber", "hinge"),
    (["--loss", "MAE"], "unknown --loss; choose mse, mae, huber", "MAE"),
    (["--wrong-derivative", "r-for-sign"], "wrong derivative for --loss mse", "r-for-sign"),
    (["--loss", "mae", "--wrong-derivative", "drop-factor-2"], "for --loss mae", "drop-factor-2"),
    (["--columns", "x"], "--columns expects", "x"),
    (["--nonsense"], "invalid command line", "--nonsense"),
    (["--lr", "0"], "--lr must be a positive number", "0.0"),
    (["--lr", "-0.5"], "--lr must be a positive number", "-0.5"),
    (["--lr", "nan"], "--lr must be a positive number", "nan"),
    (["--steps", "-1"], "--steps must not be negative", "-1"),
    (["--display-step", "0"], "--display-step must be at least 1", "0"),
    (["--lang", "fr"], "unknown language; choose en or ko", "fr"),
    (["--lr", "1e39"], "--lr overflows float32", "1e+39"),
    (["--lr", "1e-50"], "--lr is below float32's smallest normal number", "1e-50"),
    (["--lr", "1e-50", "--dtype", "float64"], "--lr is below float32's smallest", "1e-50"),
    (["--steps", "1e20"], "--steps", "1e20"),
    (["--steps", str(2**31)], "--steps must be at most", str(2**31)),
    (["--steps", str(2**31 - 1)], "--steps must be at most", str(2**31 - 1)),
    (["--steps", str(MAX_STEPS + 1)], "--steps must be at most", str(MAX_STEPS + 1)),
    (["--debug", "--lr", "-1"], "--lr must be a positive number", "-1.0"),
]

CSV_CASES = [
    ("x,y\n1,2\n3,oops\n", "non-numeric value in column 'y' on line 3", "'oops'"),
    ("x,y\n1,2\nnan,3\n", "column 'x' on line 3 is not a finite number", "'nan'"),
    ("a,b\n1,2\n", "column 'x' not found", "a, b"),
    ("x,y\n", "no samples in the CSV data", "data.csv"),
    ("", "no header row", "data.csv"),
    ("\n\nx,y\n\n1,2\n   \n3,oops\n", "non-numeric value in column 'y' on line 7", "'oops'"),
    ("\n \n", "no header row", "data.csv"),
    ("x,x,y\n1,2,3\n", "column 'x' appears 2 times in the CSV header", "x, x, y"),
    ("x,y\n1,2\n3,4,5\n", "line 3 has more fields than the CSV header", "3 fields, the header"),
    ("x;y\n1;2;\n", "line 2 has more fields than the CSV header", "3 fields, the header has 2"),
    ("x,y\n1,2\n3,\n", "missing value in column 'y' on line 3", "empty cell"),
    ("x,y\n1,2\n,4\n", "missing value in column 'x' on line 3", "empty cell"),
    ("x,y\n1,2\n1e39,3\n", "x of sample 2 overflows float32", "1e+39"),
    ("x,y\n1," + "1" * 100_000 + "\n", "on line 2 is not a finite", "100,002 characters"),
    ("x;y\n1,5;2,5\n", "non-numeric value in column 'x' on line 2", "'1,5'"),
    ('x,y\n"1,5",2\n', "non-numeric value in column 'x' on line 2", "'1,5'"),
    ("x,y\n1,5,2,5\n", "line 2 has more fields than the CSV header", "4 fields, the header"),
    ("x\ty\n1\toops\n", "non-numeric value in column 'y' on line 2", "'oops'"),
]


@pytest.mark.parametrize(("arguments", "what", "value"), BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(out, capsys, arguments, what, value):
    before = _snapshot(out)
    code = main(["report", "--out", str(out), *arguments])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert what in lines[0] and value in lines[0], lines[0]
    assert len(lines[0]) < MESSAGE_LENGTH, lines[0]
    assert _snapshot(out) == before


@pytest.mark.parametrize(("text", "what", "value"), CSV_CASES)
def test_bad_csv_is_one_line_and_exit_2(out, tmp_path, capsys, text, what, value):
    before = _snapshot(out)
    code = main(["report", "--out", str(out), "--data", _csv(tmp_path, text)])
    message = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in message and what in message and value in message, message
    assert len(message) < MESSAGE_LENGTH, message
    assert _snapshot(out) == before


def test_output_folder_that_cannot_be_created(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = main(["report", "--out", str(blocker / "sub")])
    assert code == 2
    assert "cannot create the output folder" in capsys.readouterr().err


def test_csv_variants_are_read(tmp_path):
    from derive.problem.datasets import read_csv

    path = tmp_path / "semi.csv"
    path.write_text("\ufeff# measured in class\nlen;weight\n\n3.3;1.7\n1;2\n", encoding="utf-8")
    dataset = read_csv(str(path), ("len", "weight"))
    assert dataset.x == (3.3, 1.0) and dataset.y == (1.7, 2.0)
    # No comments, but blank and whitespace-only lines, and a header after blank lines.
    path.write_text("\n\nx,y\n\n1,2\n  \n3, 4\n", encoding="utf-8")
    dataset = read_csv(str(path))
    assert dataset.x == (1.0, 3.0) and dataset.y == (2.0, 4.0)


@pytest.mark.parametrize(
    "text",
    [
        "x,y\n1,2\n3,4\n",  # plain
        "x,y\r\n1,2\r\n3,4\r\n",  # Windows line ends
        "x,y\r1,2\r3,4\r",  # bare carriage returns
        "  \n x , y \n1,2\n\n3,4",  # blank lines, spaces, no final line end
        "y,x\n2,1\n4,3\n",  # columns in the other order
        "x,y,z\n1,2,9\n3,4,9\n",  # a column more
        'x,y\n"1",2\n3,"4"\n',  # quoted cells
        "# a comment\nx,y\n1,2\n# another\n3,4\n",
        "x\ty\n1\t2\n3\t 4\n",  # tab-separated
        "x\ty\n1\t2\n# a comment\n3\t4\n",
        "a,x,a,y\n0,1,0,2\n0,3,0,4\n",  # a repeated name among the columns not used
    ],
)
def test_every_csv_layout_gives_the_same_samples(text):
    from derive.problem.datasets import read_csv_text

    dataset = read_csv_text(text, "data.csv")
    assert dataset.x == (1.0, 3.0) and dataset.y == (2.0, 4.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x,y\n1,2\n3\n", "line 3"),  # a short row
        ("x,y\n1,2\n3,four\n", "'four'"),
        ("x,y\n1,nan\n", "'nan'"),
        ("x,y\n", "no samples"),
    ],
)
def test_a_bad_csv_row_is_named(text, message):
    from derive.common.errors import InputError
    from derive.problem.datasets import read_csv_text

    with pytest.raises(InputError) as caught:
        read_csv_text(text, "data.csv")
    assert message in str(caught.value)


def test_help_has_examples():
    result = subprocess.run(
        [sys.executable, "-m", "derive", "report", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "examples:" in result.stdout and "--init W=0.21318328" in result.stdout


def test_no_traceback_at_process_level(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "derive", "report", "--dtype", "float8", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == "error: unknown dtype; choose float32 or float64 (float8)\n"
    assert list(tmp_path.iterdir()) == []


class _NoJob:
    """Stands in for the training process: nothing is started."""

    def close(self) -> None:
        pass


@pytest.fixture
def no_tensorflow(monkeypatch):
    """Run the command line on the float32 emulation instead of TensorFlow: the
    initial check only (no training process, no backward pass)."""
    from derive.render.outputs import render_all
    from derive.report.build import explain
    from tests.emulated_tape import emulated_tape

    def run(job, problem, wrong_derivative, formats, progress, *, lang="en", backward=True):
        report = explain(problem, wrong_derivative, tape=emulated_tape, backward=False)
        return report, render_all(report, formats, lang=lang)

    monkeypatch.setattr("derive.cli.background.TrainingJob", _NoJob)
    monkeypatch.setattr("derive.cli.pipeline.run", run)


def test_a_failing_pdf_step_changes_nothing(out, capsys, monkeypatch, no_tensorflow):
    from derive.common.errors import RenderError

    (out / "seed.pdf").write_bytes(b"%PDF an earlier report")
    before = _snapshot(out)

    def broken_pdf(html, fetcher=None):
        raise RenderError("WeasyPrint could not make the PDF: no Pango; nothing was written")

    monkeypatch.setattr("derive.render.pdf.to_pdf", broken_pdf)  # the draft's warm-up
    monkeypatch.setattr("derive.render.outputs.to_pdf", broken_pdf)  # the report's PDF
    code = main(["report", "--out", str(out), "--seed", "1", "--no-backward"])
    message = capsys.readouterr().err.strip()
    assert code != 0
    assert message.startswith("error: WeasyPrint could not make the PDF") and "\n" not in message
    assert _snapshot(out) == before


def test_an_interrupted_write_leaves_earlier_files(out, monkeypatch, no_tensorflow):
    before = _snapshot(out)

    def interrupted(descriptor):
        raise KeyboardInterrupt  # as if Ctrl-C arrived while a file was being written

    monkeypatch.setattr("derive.render.files.os.fsync", interrupted)
    code = main(
        ["report", "--out", str(out), "--seed", "1", "--no-backward", "--format", "html,json"]
    )
    assert code == 130
    assert _snapshot(out) == before  # no temporary files left behind either


def test_an_unexpected_error_is_one_line_and_exit_3(out, capsys, monkeypatch, no_tensorflow):
    def crash(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("derive.render.outputs.to_html", crash)
    code = main(["report", "--out", str(out), "--seed", "1", "--no-backward"])
    message = capsys.readouterr().err.strip()
    assert code == 3
    assert message == (
        "error: internal error: ZeroDivisionError: boom (run again with --debug for the traceback)"
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_adds_the_traceback_and_keeps_the_exit_code(
    out, capsys, monkeypatch, no_tensorflow, where
):
    def crash(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("derive.render.outputs.to_html", crash)
    arguments = ["report", "--out", str(out), "--seed", "1", "--no-backward"]
    code = main(["--debug", *arguments] if where == "before" else [*arguments, "--debug"])
    message = capsys.readouterr().err
    assert code == 3
    assert message.startswith("Traceback") and "ZeroDivisionError: boom" in message
    assert message.splitlines()[-1] == "error: internal error: ZeroDivisionError: boom"


def test_report_writes_all_formats(out, capsys, no_tensorflow):
    code = main(
        [
            "report",
            "--out",
            str(out),
            "--seed",
            "3",
            "--no-backward",
            "--format",
            "html,json",
            "--quiet",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out == ""
    assert (out / "seed.json").is_file() and (out / "seed.html").read_text() != "an earlier report"
    assert sorted(p.name for p in out.iterdir()) == ["seed.html", "seed.json"]


def test_csv_from_standard_input(out, monkeypatch, capsys, no_tensorflow):
    import io
    import json

    monkeypatch.setattr("sys.stdin", io.StringIO("x;y\n3.3;1.7\n"))
    code = main(["report", "--data", "-", "--out", str(out), "--seed", "2", "--no-backward",
                 "--format", "json"])  # fmt: skip
    assert code == 0
    document = json.loads((out / "stdin.json").read_text())
    assert document["problem"]["x_given"] == [3.3] and document["problem"]["n"] == 1


def test_a_wrong_derivative_is_not_called_exact(out, capsys, no_tensorflow):
    import json

    code = main(["report", "--out", str(out), "--seed", "2", "--no-backward", "--format", "json",
                 "--wrong-derivative", "drop-factor-2"])  # fmt: skip
    assert code == 1
    lines = capsys.readouterr().out.splitlines()
    loss = next(line for line in lines if line.split()[:1] == ["L"])
    gradients = [line for line in lines if line.strip().startswith("dL/d")]
    assert " exact: " in loss  # the loss itself is not made wrong
    assert gradients and all(
        "wrong formula (drop-factor-2)" in line and "exact" not in line for line in gradients
    )
    assert json.loads((out / "seed.json").read_text())["gradient_formula"] == "drop-factor-2"


def test_ragged_rows_are_not_misread(tmp_path):
    from derive.common.errors import InputError
    from derive.problem.datasets import read_csv

    path = tmp_path / "ragged.csv"
    path.write_text("x,y\n1\n2,3,4\n", encoding="utf-8")  # as many cells as 2 rows of 2
    with pytest.raises(InputError, match="line 2"):
        read_csv(str(path))


# --- Signals, targets and the program's name ---------------------------------------------


def _signalled(pause: str, signum: int, arguments: list[str], *, emulated: bool):
    """Run the command line in a process that pauses at `pause`, send `signum` there,
    and return (exit code, standard error, pid of the training process or 0)."""
    code, err, line = signal_when_paused(
        ["report", "--quiet", *arguments],
        pause,
        signum,
        {"DERIVE_EMULATED": "1" if emulated else "0"},
    )
    return code, err, int(line.split()[1])


def _gone(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _earlier_report(out: Path) -> dict[str, bytes]:
    (out / "seed.json").write_text('{"an": "earlier report"}')
    return _snapshot(out)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_writing_changes_nothing(out, signum):
    before = _earlier_report(out)
    code, err, _ = _signalled(
        "staging", signum, ["--out", str(out), "--seed", "1", "--format", "html,json"],
        emulated=True,
    )  # fmt: skip
    assert code == 128 + signum
    assert (
        err
        == f"error: interrupted by {signal.Signals(signum).name} (no file was written or changed)\n"
    )
    assert _snapshot(out) == before  # byte for byte, and no temporary file


def test_a_signal_during_the_renames_waits_for_the_last(out):
    before = _earlier_report(out)
    code, err, _ = _signalled(
        "renaming", signal.SIGTERM, ["--out", str(out), "--seed", "1", "--format", "html,json"],
        emulated=True,
    )  # fmt: skip
    after = _snapshot(out)
    assert code == 128 + signal.SIGTERM
    assert err.startswith("error: interrupted by SIGTERM (after writing 2 files in full")
    assert sorted(after) == sorted(before)  # no temporary file
    assert all(after[name] != before[name] for name in before)  # all new, never a mix


@pytest.mark.tensorflow
@pytest.mark.parametrize(
    ("pause", "signum"), [("started", signal.SIGHUP), ("training", signal.SIGTERM)]
)
def test_a_signal_ends_the_training_process(out, pause, signum):
    before = _earlier_report(out)
    fresh = out / "new"
    code, err, child = _signalled(
        pause, signum, ["--out", str(fresh), "--seed", "1", "--steps", "100000"],
        emulated=False,
    )  # fmt: skip
    assert code == 128 + signum, err
    assert err.endswith("(no file was written or changed)\n") and err.count("\n") == 1, err
    assert child > 0 and _gone(child)
    assert _snapshot(out) == before and not fresh.exists()


def test_a_failed_run_creates_no_output_folder(tmp_path, capsys, monkeypatch, no_tensorflow):
    def crash(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("derive.render.outputs.to_html", crash)
    folder = tmp_path / "reports" / "week3"
    assert main(["report", "--out", str(folder), "--seed", "1", "--no-backward"]) == 3
    assert not (tmp_path / "reports").exists()


def test_a_folder_in_the_way_of_one_target_writes_none(out, capsys, no_tensorflow):
    (out / "seed.json").mkdir()
    before = _snapshot_tree(out)
    code = main(["report", "--out", str(out), "--seed", "1", "--format", "html,pdf,json"])
    message = capsys.readouterr().err.strip()
    assert code == 2
    assert message.startswith("error: a folder is in the way") and "seed.json" in message
    assert _snapshot_tree(out) == before


def test_write_atomically_checks_every_target_before_writing_any(tmp_path):
    from derive.common.errors import OutputError
    from derive.render.files import write_atomically

    (tmp_path / "b.pdf").mkdir()
    files = {tmp_path / "a.html": b"a", tmp_path / "b.pdf": b"b", tmp_path / "c.json": b"c"}
    with pytest.raises(OutputError, match=r"b\.pdf"):
        write_atomically(files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.pdf"]


def test_write_atomically_makes_its_folder_only_to_write(tmp_path):
    from derive.render.files import check_writable, write_atomically

    folder = tmp_path / "new" / "reports"
    check_writable(folder, [folder / "seed.html"])
    assert not (tmp_path / "new").exists()
    assert write_atomically({folder / "seed.html": b"x"}) == [folder / "seed.html"]
    assert (folder / "seed.html").read_bytes() == b"x"


def _snapshot_tree(folder: Path) -> list[tuple[str, bytes | None]]:
    return sorted(
        (str(p.relative_to(folder)), p.read_bytes() if p.is_file() else None)
        for p in folder.rglob("*")
    )


def test_handouts_accept_debug_after_the_command(tmp_path, capsys):
    code = main(["handouts", "--count", "0", "--out", str(tmp_path / "h"), "--debug"])
    message = capsys.readouterr().err
    assert code == 2
    assert message.startswith("error: --count") and message.count("\n") == 1, message


def test_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"derive {version('derive')}\n"


def test_no_command_is_usage_on_stderr_and_exit_2(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("usage: python -m derive ")
    assert captured.err.splitlines()[-1].startswith("error: no command given")


@pytest.mark.parametrize("console_script", [True, False])
def test_usage_names_the_program_as_it_was_run(console_script):
    script = Path(sys.executable).with_name("derive")
    if console_script and not script.exists():
        pytest.skip("the console script is not installed next to this interpreter")
    command = [str(script)] if console_script else [sys.executable, "-m", "derive"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    program = "derive" if console_script else "python -m derive"
    assert result.stderr.startswith(f"usage: {program} [-h]"), result.stderr


def test_a_held_signal_comes_after_the_whole_block_and_only_once():
    from derive.common.signals import Interrupted, deferred, raised_as_exceptions

    done = []
    with raised_as_exceptions(), pytest.raises(Interrupted) as caught, deferred():
        signal.raise_signal(signal.SIGTERM)
        done.append("first")
        signal.raise_signal(signal.SIGHUP)
        done.append("second")
    assert done == ["first", "second"]
    # Blocked signals reach the process in the kernel's order (by number), not as sent.
    assert caught.value.signum in {signal.SIGTERM, signal.SIGHUP}


def test_a_second_signal_does_not_break_the_clean_up():
    from derive.common.signals import Interrupted, raised_as_exceptions

    cleaned = False
    with raised_as_exceptions():
        try:
            signal.raise_signal(signal.SIGTERM)
        except Interrupted:
            signal.raise_signal(signal.SIGHUP)  # while cleaning up after the first
            cleaned = True
    assert cleaned
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the old handler is back

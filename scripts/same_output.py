"""Do two versions of derive write the same bytes?

    python scripts/same_output.py BEFORE AFTER [--python PY] [--keep DIR] [--quick]

BEFORE and AFTER are each a folder holding a checkout of the repository or a git ref
(a commit, a branch, `main`, `HEAD~3`) of the repository this script sits in; a ref is
exported with `git archive` into a temporary folder. Each version runs the same
commands, with fixed seeds and pinned initial values, from its own source tree
(PYTHONPATH), with the same Python (by default the one running this script, so the
same libraries): reports of the built-in data sets as HTML, PDF and JSON, one in Korean,
one from a CSV file, one with a wrong derivative, and a set of handouts. Every file
written is compared by SHA-256 and so is each command's exit code.

Exit 0 when every file and exit code is the same, 1 otherwise (the differing files are
listed), 2 on bad usage.

PDFs carry no creation date: derive sets SOURCE_DATE_EPOCH=0 while WeasyPrint writes
(the one timestamp, in the embedded font subsets), and the plots' SVG uses a fixed hash
salt and no date. So nothing is masked here: the bytes must be equal as written. To see
that a version is deterministic at all, compare it with itself (`main main`).

The bytes also depend on the machine: the fonts installed, and whether WeasyPrint finds
HarfBuzz's subsetting library (`libharfbuzz-subset0`; without it fontTools subsets the
fonts, with other bytes). The script notes both before and after each version's runs
and says so when they changed meanwhile: the comparison is then void, run it again.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CSV_DATA = "x,y\n0.5,1.25\n1.5,2.0\n2.25,2.5\n3.0,3.75\n4.5,4.0\n"
ROSTER = "name\nAda Lovelace\nKim Min-jun\n김민준\n"

# (output folder, arguments). Every report pins its seed; some pin W and b as well.
COMMANDS: list[tuple[str, list[str]]] = [
    ("seed", ["report", "--data", "seed", "--seed", "1", "--name", "seed"]),
    ("single", ["report", "--data", "single", "--seed", "2", "--name", "single"]),
    ("tf-examples", ["report", "--data", "tf-examples", "--seed", "3", "--name", "tf"]),
    (
        "tf-standardized",
        ["report", "--data", "tf-examples", "--seed", "3", "--standardize", "--name", "tfz"],
    ),
    ("ko", ["report", "--data", "seed", "--seed", "4", "--lang", "ko", "--name", "seed-ko"]),
    ("pinned", ["report", "--data", "seed", "--init", "W=0.2,b=0.7", "--name", "pinned"]),
    (
        "wrong",
        ["report", "--data", "single", "--seed", "5", "--wrong-derivative", "drop-factor-2"],
    ),
    ("csv", ["report", "--data", "{csv}", "--seed", "6", "--steps", "200", "--name", "csv"]),
    ("handouts", ["handouts", "--count", "3", "--seed", "7"]),
    ("handouts-ko", ["handouts", "--roster", "{roster}", "--seed", "8", "--lang", "ko"]),
]
QUICK = {"seed", "ko", "handouts"}


def checkout(source: str, scratch: Path, label: str) -> Path:
    """A folder holding the source: the folder itself, or a git ref exported."""
    folder = Path(source)
    if (folder / "derive" / "__init__.py").is_file():
        return folder.resolve()
    target = scratch / f"src-{label}"
    target.mkdir()
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", source],
            check=True,
            capture_output=True,
        ).stdout
    except subprocess.CalledProcessError as error:
        sys.exit(f"error: {source!r} is neither a checkout nor a git ref: {error.stderr.decode()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def run_all(
    source: Path, out: Path, inputs: Path, python: str, names: set[str] | None
) -> dict[str, int]:
    """Run every command with the source tree first on the path, from `inputs` (the
    same folder for both versions: a report names the CSV file it read); return the
    exit codes."""
    out.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(source), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("SOURCE_DATE_EPOCH", None)
    where = subprocess.run(
        [python, "-c", "import derive; print(derive.__file__)"],
        env=env,
        cwd=inputs,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(source.resolve()):
        sys.exit(f"error: derive was imported from {where}, not from {source}")
    codes = {}
    for name, arguments in COMMANDS:
        if names is not None and name not in names:
            continue
        arguments = [
            a.format(csv=inputs / "data.csv", roster=inputs / "roster.csv") for a in arguments
        ]
        command = [python, "-m", "derive", *arguments, "--out", str(out / name), "--quiet"]
        if arguments[0] == "report":
            command += ["--format", "html,pdf,json"]
        done = subprocess.run(command, env=env, cwd=inputs, capture_output=True, text=True)
        codes[name] = done.returncode
        print(f"  {name}: exit {done.returncode}", flush=True)
        if done.returncode not in (0, 1):
            print(done.stderr, file=sys.stderr)
    return codes


ENVIRONMENT = """
import ctypes.util, hashlib, subprocess
import weasyprint
fonts = subprocess.run(["fc-list"], capture_output=True, text=True).stdout
print(weasyprint.__version__, ctypes.util.find_library("harfbuzz-subset"),
      hashlib.sha256("".join(sorted(fonts.splitlines())).encode()).hexdigest()[:16])
"""


def environment(python: str) -> str:
    """What besides the code decides the PDF bytes: WeasyPrint's version, the HarfBuzz
    subsetting library (or None), a hash of the installed fonts."""
    return subprocess.run(
        [python, "-c", ENVIRONMENT], capture_output=True, text=True, check=True
    ).stdout.strip()


def digests(out: Path) -> dict[str, str]:
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="a checkout folder or a git ref")
    parser.add_argument("after", help="a checkout folder or a git ref")
    parser.add_argument("--python", default=sys.executable, help="the Python to run derive with")
    parser.add_argument("--keep", type=Path, help="keep the outputs in this folder")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(sorted(QUICK))}")
    options = parser.parse_args(argv)
    names = QUICK if options.quick else None

    scratch = Path(tempfile.mkdtemp(prefix="same-output-"))
    inputs = scratch / "inputs"
    inputs.mkdir()
    (inputs / "data.csv").write_text(CSV_DATA, encoding="utf-8")
    (inputs / "roster.csv").write_text(ROSTER, encoding="utf-8")
    try:
        results = []
        machine = [environment(options.python)]
        print(f"environment: {machine[0]}")
        for label, source in (("before", options.before), ("after", options.after)):
            tree = checkout(source, scratch, label)
            print(f"{label}: {source} ({tree})", flush=True)
            out = (options.keep or scratch) / label
            if out.exists():
                shutil.rmtree(out)
            codes = run_all(tree, out, inputs, options.python, names)
            results.append((codes, digests(out)))
            machine.append(environment(options.python))
        if len(set(machine)) > 1:
            print(f"\nthe environment changed during the runs: {machine}; run again")
            return 1
        (codes_a, files_a), (codes_b, files_b) = results
        differences = [
            f"exit code of {name}: {codes_a.get(name)} != {codes_b.get(name)}"
            for name in sorted(set(codes_a) | set(codes_b))
            if codes_a.get(name) != codes_b.get(name)
        ]
        for path in sorted(set(files_a) | set(files_b)):
            a, b = files_a.get(path), files_b.get(path)
            if a != b:
                differences.append(f"{path}: {a or 'missing'} != {b or 'missing'}")
        for path in sorted(files_a):
            mark = "same" if files_a[path] == files_b.get(path) else "DIFFERENT"
            print(f"{files_a[path][:16]}  {mark:9}  {path}")
        if differences:
            print(f"\n{len(differences)} difference(s):")
            print("\n".join(f"  {line}" for line in differences))
            return 1
        print(f"\nall {len(files_a)} files and {len(codes_a)} exit codes are the same")
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

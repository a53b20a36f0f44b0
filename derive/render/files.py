"""Writing the files of a report: every target checked before anything is written, then
temporary files renamed into place together (a signal waits until the last rename), so
that a report is all old or all new."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from pathlib import Path

from ..common.errors import OutputError
from ..common.signals import deferred, note_written


def check_writable(folder: Path, targets: Iterable[Path] = ()) -> None:
    """Make sure the output folder exists and is writable or can be made, and that no
    target is in the way (a folder where a file goes). Creates nothing: a run that
    fails later must not leave an empty folder behind."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing != folder:
        if not existing.is_dir():
            raise OutputError(
                "cannot create the output folder", f"{folder}: {os.strerror(errno.ENOTDIR)}"
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(
                "cannot create the output folder", f"{folder}: {os.strerror(errno.EACCES)}"
            )
    elif not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError("cannot write to the output folder", folder)
    check_targets(targets)


def check_targets(targets: Iterable[Path]) -> None:
    """A folder where a file is to go would fail its rename after the others were done."""
    for path in targets:
        if path.is_dir():
            raise OutputError(
                "a folder is in the way of a file to write; nothing was written", path
            )


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, innermost last."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    created: list[Path] = []
    try:
        for path in reversed(missing):
            path.mkdir()
            created.append(path)
    except OSError as error:
        _remove_folders(created)
        raise OutputError(
            "cannot create the output folder", f"{folder}: {error.strerror}"
        ) from None
    return created


def _remove_folders(created: list[Path]) -> None:
    for path in reversed(created):
        with suppress(OSError):
            path.rmdir()


def _rename_all(staged: list[tuple[str, Path]]) -> None:
    """Rename every file into place, all or none as far as signals go: SIGINT, SIGTERM
    and SIGHUP are held back until the last rename is done, then delivered."""
    with deferred():
        for temporary, path in staged:
            os.replace(temporary, path)
        note_written(path for _, path in staged)


def write_atomically(files: Mapping[Path, bytes]) -> list[Path]:
    """Write each file to a temporary name in its folder, then rename them all into place.

    Every target is checked first, and the folders are made only now. A failure or a
    signal before the renames leaves every earlier file untouched and no temporary file.
    """
    check_targets(files)
    created = [
        path for folder in dict.fromkeys(p.parent for p in files) for path in _make_folders(folder)
    ]
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            # Held signals: a temporary file made but not yet recorded would be left behind.
            with deferred():
                descriptor, temporary = tempfile.mkstemp(
                    dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
                )
                staged.append((temporary, path))
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o644)
        _rename_all(staged)
    except OSError as error:
        _discard(staged, created)
        raise OutputError(
            "cannot write the report", f"{error.filename}: {error.strerror}"
        ) from None
    except BaseException:
        _discard(staged, created)
        raise
    return [path for _, path in staged]


def _discard(staged: list[tuple[str, Path]], created: list[Path]) -> None:
    """Remove the temporary files, and the folders made for them if nothing got in."""
    for temporary, _ in staged:
        if os.path.exists(temporary):
            os.unlink(temporary)
    _remove_folders(created)

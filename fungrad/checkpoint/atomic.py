"""Atomic file writes, and the checks a run folder passes before training starts.

A file written with :func:`write_atomically` (or :func:`write_text`) goes to a temporary file
beside the target, ``.<name>.<random>.tmp`` with 12 random hex digits, is flushed to disk
(``os.fsync``) and renamed over the target with ``os.replace``; then the directory is flushed
too, so the rename itself survives a power cut. The rename is atomic, so a reader, or a run
killed at any moment, sees either the previous file or the complete new one. An exception or
``KeyboardInterrupt`` during the write removes the temporary file; a hard kill (SIGKILL, power
loss) can leave one behind, which :func:`remove_leftovers` deletes.

:func:`check_folder` is the pre-flight check: it finds an unwritable folder, a full disk or a
directory where a checkpoint should go before minutes of compiling and training are spent.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_folder(folder / "run", needed_bytes=1000, files=["config.json"])
    >>> write_text(folder / "run" / "config.json", '{"epochs": 3}')
    >>> (folder / "run" / "config.json").read_text()
    '{"epochs": 3}'
    >>> remove_leftovers(folder / "run")
    []
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from fungrad.checkpoint.errors import CheckpointError

__all__ = ["write_atomically", "write_text", "remove_leftovers", "check_folder"]

_LEFTOVER = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")
_PROBE = ".fungrad-probe"  # a probe a killed check leaves behind matches _LEFTOVER too


def _temporary_name(target: Path) -> Path:
    return target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"


def write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through ``write(file)`` to a temporary file beside ``target``, then rename it.

    Missing parent directories are created. If ``write`` raises (``KeyboardInterrupt``
    included), the temporary file is removed, ``target`` is left as it was, and the exception
    propagates.

    Args:
        target: the file to write.
        write: called once with the temporary file, opened for binary writing.

    Raises:
        OSError: if the directory cannot be created or written.
    """
    target = Path(target)
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = _temporary_name(target)
        try:
            descriptor = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    # Make the rename itself durable; directories cannot be opened on Windows.
    with contextlib.suppress(OSError):
        directory_descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: a JSON config, a history, a summary.

    Args:
        path: the file to write; missing parent directories are created.
        text: the whole content.

    Raises:
        TypeError: if ``path`` is not a path or ``text`` not a ``str``.
        OSError: if the directory cannot be created or written.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    content = text.encode("utf-8")
    write_atomically(Path(path), lambda file: file.write(content))


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed saves left in ``folder``.

    Only regular files named like the temporary files of :func:`write_atomically`,
    ``.<anything>.<12 hex digits>.tmp``, are removed; everything else is left alone, and
    subfolders are not searched. Run it when no other process is saving into ``folder``
    (e.g. when a run starts or resumes): it cannot tell a dead save's file from a live one's.

    Args:
        folder: the folder to clean; a folder that does not exist holds nothing to remove.

    Returns:
        The files removed, sorted.

    Raises:
        CheckpointError: if ``folder`` exists but is not a directory.
    """
    folder = Path(folder)
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: is not a directory; expected a run folder")
    removed = []
    for entry in sorted(folder.iterdir()):
        if _LEFTOVER.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


def _size(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _nearest_existing(folder: Path) -> Path:
    """``folder`` itself, or the ancestor it would be created in; checked to be directories."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        raise CheckpointError(
            f"{folder}: is a file; expected a directory to write the run in (or nothing there)"
        )
    if not existing.is_dir():
        raise CheckpointError(
            f"{folder}: cannot be created: {existing} is a file; expected a directory"
        )
    return existing


def _probe_writable(folder: Path, existing: Path) -> None:
    # os.access answers for the real user id and ignores read-only mounts; only a write tells.
    probe = existing / f"{_PROBE}.{secrets.token_hex(6)}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        where = "here" if existing == folder else f"in {existing} to create it"
        raise CheckpointError(f"{folder}: cannot write {where} ({reason})") from error


def check_folder(
    folder: str | os.PathLike, *, needed_bytes: int, files: Sequence[str] = ()
) -> None:
    """Check that a run can write its files into ``folder``, before anything compiles.

    ``folder`` must be a directory or not exist yet (its nearest existing ancestor must then
    be a directory, where it will be created); a probe file is actually created there with
    ``O_EXCL`` and deleted (permissions, read-only mounts and quotas all show); the disk must
    have ``needed_bytes`` free; and none of ``files`` may exist as a directory inside
    ``folder``. Nothing is created or left behind.

    Args:
        folder: the run folder.
        needed_bytes: the room the run's files need (e.g. twice the checkpoint's size, as the
            new file is written before the old one is replaced).
        files: names of files the run will write into ``folder`` (``"checkpoint.npz"``).

    Raises:
        CheckpointError: one line naming the folder or file, what was expected and what was
            found, e.g. ``runs/x: needs about 12.3 MB free for the checkpoint, 1.2 MB
            available``.
        TypeError, ValueError: if an argument has the wrong type or value.
    """
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"folder: expected a str or os.PathLike, got {type(folder).__name__}")
    if isinstance(needed_bytes, bool) or not isinstance(needed_bytes, int) or needed_bytes < 0:
        raise ValueError(f"needed_bytes: expected an int >= 0, got {needed_bytes!r}")
    if isinstance(files, (str, bytes)) or not all(isinstance(name, str) for name in files):
        raise TypeError(f"files: expected a sequence of file names, got {files!r}")
    folder = Path(folder)
    existing = _nearest_existing(folder)
    for name in files:
        if (folder / name).is_dir():
            raise CheckpointError(f"{folder / name} is a directory; expected a file or nothing")
    _probe_writable(folder, existing)
    free = shutil.disk_usage(existing).free
    if free < needed_bytes:
        raise CheckpointError(
            f"{folder}: needs about {_size(needed_bytes)} free for the checkpoint, "
            f"{_size(free)} available"
        )

"""The output folder of ``fungrad train``: chosen, protected and checked before training.

A run never destroys another run. Without ``--out`` each run gets the next free
``runs/run-NNN`` (created atomically, so two runs started together get two folders). An
explicit ``--out`` that already holds a run is refused unless ``--overwrite``. Before
anything compiles, the folder is checked: a folder, writable, with room for the checkpoint.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from fungrad.cli import UsageError

RUN_FILES = ("checkpoint.npz", "config.json", "history.json", "plot.png", "summary.json")
DEFAULT_PARENT = Path("runs")


def holds_run(folder: Path) -> str | None:
    """The first run file ``folder`` holds, or ``None``."""
    for name in RUN_FILES:
        if (folder / name).is_file():
            return name
    return None


def new_run_folder(parent: Path = DEFAULT_PARENT) -> Path:
    """Create and return the next free ``parent/run-NNN``."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out: cannot create {parent} ({error.strerror or error})") from None
    if not parent.is_dir():
        raise UsageError(f"--out: {parent} is not a folder")
    taken = [p.name[4:] for p in parent.glob("run-*")]
    number = max([int(t) for t in taken if t.isdigit()], default=0) + 1
    while True:
        folder = parent / f"run-{number:03d}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            number += 1
        except OSError as error:
            raise UsageError(f"--out: cannot create {folder} ({error.strerror or error})") from None


def claim(out: Path | None, overwrite: bool) -> Path:
    """The folder a new run writes to: ``out`` (checked) or a new numbered one."""
    if out is None:
        if overwrite:
            raise UsageError("--overwrite: only means something with --out")
        return new_run_folder()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} is a file; expected a folder")
    held = holds_run(out) if out.is_dir() else None
    if held and not overwrite:
        raise UsageError(
            f"--out: {out} already holds a run ({held}); pass --overwrite to replace it, "
            f"--resume {out} to continue it, or choose another folder"
        )
    if held:
        for name in RUN_FILES:
            path = out / name
            if path.is_file():
                path.unlink()
    return out


def release(folder: Path) -> None:
    """Remove ``folder`` again if a failed run left it empty."""
    with contextlib.suppress(OSError):
        folder.rmdir()  # only succeeds when empty


def check(folder: Path, needed_bytes: int) -> None:
    """Raise a one-line UsageError unless ``folder`` can take the run's files."""
    from fungrad import checkpoint

    try:
        checkpoint.check_folder(folder, needed_bytes=needed_bytes, files=RUN_FILES)
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint.remove_leftovers(folder)
    except checkpoint.CheckpointError as error:
        raise UsageError(f"--out: {error}") from None
    except OSError as error:
        raise UsageError(f"--out: {folder}: {error.strerror or error}") from None


def checkpoint_bytes(parameters: int, itemsize: int, copies: int, runs: int) -> int:
    """About the bytes of one checkpoint: ``copies`` parameter-sized trees per run, plus slack."""
    return parameters * itemsize * copies * runs + 1_000_000


def resume_folder(path: Path) -> Path:
    """The run folder ``--resume`` names: the folder itself, or the one holding a checkpoint."""
    folder = path.parent if path.is_file() else path
    if not (folder / "checkpoint.npz").is_file():
        what = "no such folder" if not folder.exists() else "no checkpoint.npz in it"
        raise UsageError(
            f"--resume: {path}: {what}; expected a run folder written by fungrad train"
        )
    return folder


def relative(path: Path) -> str:
    """``path`` as the user would type it from here."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)

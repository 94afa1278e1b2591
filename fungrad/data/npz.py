"""NumPy ``.npz`` archives holding arrays ``"x"`` and ``"y"``."""

from __future__ import annotations

import contextlib
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fungrad.data.dataset import Dataset, PathLike, _dataset, _features
from fungrad.data.files import _path

_DAMAGED = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error)


def load_npz(path: PathLike) -> Dataset:
    """A dataset from a NumPy ``.npz`` archive holding arrays ``"x"`` and ``"y"``.

    ``x`` may have any numeric dtype and shape ``(n, ...)`` (flattened to ``(n, d)``); integer
    ``y`` are class labels, float ``y`` regression targets.

    Raises:
        DataFileNotFoundError: if the file does not exist.
        ValueError, TypeError: if it is not an ``.npz`` archive, lacks ``x`` or ``y``, or their
            values or lengths are wrong.
    """
    path = _path(path, "path")
    with _archive(path, "of arrays 'x' and 'y'") as arrays:
        missing = [name for name in ("x", "y") if name not in arrays.files]
        if missing:
            raise ValueError(
                f"{path}: expected arrays 'x' and 'y', missing "
                f"{', '.join(map(repr, missing))} "
                f"(it holds: {', '.join(map(repr, arrays.files)) or 'nothing'})"
            )
        x, y = _member(arrays, "x", path), _member(arrays, "y", path)
    return _dataset(x, y, path.name, str(path))


def _npz_rows(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``"x"`` (and ``"y"`` if present) of an ``.npz`` archive."""
    with _archive(path, "holding an array 'x'") as arrays:
        if "x" not in arrays.files:
            held = ", ".join(map(repr, arrays.files)) or "nothing"
            raise ValueError(f"{path}: expected an array 'x' of rows (it holds: {held})")
        x = _member(arrays, "x", path)
        y = _member(arrays, "y", path) if "y" in arrays.files else None
    x = _features(x, str(path))
    if y is not None and (y.ndim < 1 or y.shape[0] != x.shape[0]):
        raise ValueError(
            f"{path}: 'x' has {x.shape[0]} rows but 'y' has shape {y.shape}; "
            "expected one label per row"
        )
    return x, y


@contextlib.contextmanager
def _archive(path: Path, expected: str) -> Iterator[np.lib.npyio.NpzFile]:
    """The open archive; ``expected`` says what it should hold, for the one-array error."""
    # np.load is given an open file, not the path: it leaks its own handle when the zip is bad.
    with path.open("rb") as file:
        try:
            arrays = np.load(file, allow_pickle=False)
        except _DAMAGED as error:
            raise ValueError(f"{path}: not a readable .npz archive ({error})") from error
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError(f"{path}: expected an .npz archive {expected}, got one array")
        with arrays:
            yield arrays


def _member(arrays: np.lib.npyio.NpzFile, name: str, path: Path) -> np.ndarray:
    try:
        return arrays[name]
    except _DAMAGED as error:
        raise ValueError(f"{path}: damaged array in the .npz archive ({error})") from error

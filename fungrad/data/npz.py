"""NumPy ``.npz`` archives holding arrays ``"x"`` and ``"y"``."""

from __future__ import annotations

import contextlib
import math
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fungrad.data.dataset import Dataset, PathLike, _dataset, _features
from fungrad.data.files import MAX_BYTES, _max_bytes, _path, _size, _too_big

# zipfile raises NotImplementedError / RuntimeError for unsupported or encrypted members.
_DAMAGED = (
    OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, NotImplementedError,
    RuntimeError,
)  # fmt: skip


def load_npz(path: PathLike, *, max_bytes: int = MAX_BYTES) -> Dataset:
    """A dataset from a NumPy ``.npz`` archive holding arrays ``"x"`` and ``"y"``.

    ``x`` may have any numeric dtype and shape ``(n, ...)`` (flattened to ``(n, d)``); integer
    ``y`` are class labels, float ``y`` regression targets. Before an array is read, the size
    the archive records for it and the shape its ``.npy`` header declares are checked against
    the bytes that are there and against ``max_bytes``.

    Args:
        path: the archive.
        max_bytes: the most bytes ``x`` and ``y`` together may inflate to (default
            :data:`MAX_BYTES`, 4 GiB).

    Returns:
        A :class:`Dataset` named after the file.

    Raises:
        DataFileNotFoundError: if the file does not exist.
        ValueError, TypeError: if it is not an ``.npz`` archive, lacks ``x`` or ``y``, their
            values or lengths are wrong, or they pass ``max_bytes``.
    """
    max_bytes = _max_bytes(max_bytes)
    path = _path(path, "path")
    with _archive(path, "of arrays 'x' and 'y'") as arrays:
        missing = [name for name in ("x", "y") if name not in arrays.files]
        if missing:
            raise ValueError(
                f"{path}: expected arrays 'x' and 'y', missing "
                f"{', '.join(map(repr, missing))} "
                f"(it holds: {', '.join(map(repr, arrays.files)) or 'nothing'})"
            )
        _check_sizes(arrays, ["x", "y"], path, max_bytes)
        x, y = _member(arrays, "x", path), _member(arrays, "y", path)
    return _dataset(x, y, path.name, str(path))


def _npz_rows(path: Path, max_bytes: int = MAX_BYTES) -> tuple[np.ndarray, np.ndarray | None]:
    """``"x"`` (and ``"y"`` if present) of an ``.npz`` archive."""
    with _archive(path, "holding an array 'x'") as arrays:
        if "x" not in arrays.files:
            held = ", ".join(map(repr, arrays.files)) or "nothing"
            raise ValueError(f"{path}: expected an array 'x' of rows (it holds: {held})")
        _check_sizes(arrays, [name for name in ("x", "y") if name in arrays.files], path, max_bytes)
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


def _check_sizes(
    arrays: np.lib.npyio.NpzFile, names: list[str], path: Path, max_bytes: int
) -> None:
    """Refuse members that inflate past ``max_bytes`` together, or whose header lies.

    Reads only the zip directory and each member's ``.npy`` header: the array's size
    ``prod(shape) * itemsize`` must fit in the bytes the member holds after its header, so
    NumPy never allocates an array the file cannot fill.
    """
    members = [arrays.zip.getinfo(_zip_name(arrays, name)) for name in names]
    total = sum(member.file_size for member in members)
    if total > max_bytes:
        held = ", ".join(map(repr, names))
        raise _too_big(path, f"the arrays {held} inflate to {_size(total)},", max_bytes)
    for name, member in zip(names, members, strict=True):
        try:
            with arrays.zip.open(member) as stream:
                header = _npy_header(stream)
                rest = member.file_size - stream.tell()
        except _DAMAGED as error:
            raise ValueError(f"{path}: damaged array in the .npz archive ({error})") from error
        if header is None:
            continue  # Not a .npy member: NumPy reads it as bytes, at most file_size of them.
        shape, dtype = header
        declared = math.prod(shape) * dtype.itemsize
        if declared > rest:
            raise ValueError(
                f"{path}: array {name!r} is truncated: its header declares shape {shape} of "
                f"{dtype}, {declared} bytes, but {rest} follow it"
            )


def _zip_name(arrays: np.lib.npyio.NpzFile, name: str) -> str:
    """The zip member behind ``arrays[name]`` (``name.npy``, or ``name`` as saved)."""
    return name + ".npy" if name + ".npy" in arrays.zip.namelist() else name


def _npy_header(stream) -> tuple[tuple[int, ...], np.dtype] | None:
    """The shape and dtype a ``.npy`` header declares, or ``None`` without the magic string."""
    if stream.read(len(np.lib.format.MAGIC_PREFIX)) != np.lib.format.MAGIC_PREFIX:
        return None
    major, minor = stream.read(2)
    if major not in (1, 2, 3):
        raise ValueError(f"unknown .npy format version {major}.{minor}")
    # Versions 2 and 3 differ only in the header's text encoding; the layout is the same.
    read = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read(stream)
    return tuple(shape), np.dtype(dtype)

"""MNIST-style IDX files: a small header (dtype code, dimensions) and big-endian data."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fungrad.data.dataset import Dataset, PathLike, _dataset, _features
from fungrad.data.files import MAX_BYTES, _max_bytes, _opened, _path, _read_to_end, _too_big

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def load_idx(
    images_path: PathLike, labels_path: PathLike, *, max_bytes: int = MAX_BYTES
) -> Dataset:
    """A dataset from MNIST-style IDX files: images ``(n, rows, cols)`` and labels ``(n,)``.

    Either file may be gzipped (detected by its first bytes). The header (magic number, dtype
    code, dimensions) is checked against the data, and the size it declares against
    ``max_bytes``, before the data is read. Images are flattened to ``(n, rows * cols)``
    float32 with their values unchanged (0..255 for MNIST).

    Args:
        images_path: the IDX images file.
        labels_path: the IDX labels file.
        max_bytes: the most bytes each file may hold or inflate to (default
            :data:`MAX_BYTES`, 4 GiB).

    Returns:
        A :class:`Dataset` named after the images file.

    Raises:
        DataFileNotFoundError: if a file does not exist.
        ValueError: for a damaged or truncated file, swapped files, mismatched lengths, or a
            file over ``max_bytes``.
    """
    max_bytes = _max_bytes(max_bytes)
    images_path = _path(images_path, "images_path")
    labels_path = _path(labels_path, "labels_path")
    images = _read_idx(images_path, max_bytes)
    labels = _read_idx(labels_path, max_bytes)
    _check_images(images, images_path)
    if labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected IDX labels (n,), got shape {labels.shape} "
            "(is it the images file?)"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{labels_path}: holds {labels.shape[0]} labels but {images_path} holds "
            f"{images.shape[0]} images; expected one label per image"
        )
    return _dataset(images, labels, images_path.name, str(images_path))


def _idx_rows(
    path: Path, labels: PathLike | None, max_bytes: int = MAX_BYTES
) -> tuple[np.ndarray, np.ndarray | None]:
    """An IDX images file's rows, flattened, and its labels file's labels if given."""
    images = _read_idx(path, max_bytes)
    _check_images(images, path)
    x = _features(images, str(path))
    if labels is None:
        return x, None
    labels_path = _path(labels, "labels")
    y = _read_idx(labels_path, max_bytes)
    if y.shape != (x.shape[0],):
        raise ValueError(
            f"{labels_path}: expected {x.shape[0]} labels (n,) for the images of {path}, "
            f"got shape {y.shape}"
        )
    return x, y


def _check_images(images: np.ndarray, path: Path) -> None:
    if images.ndim < 2:
        raise ValueError(
            f"{path}: expected IDX images (n, rows, cols), got shape {images.shape} "
            "(is it the labels file?)"
        )


def _read_idx(path: Path, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """One IDX array: magic ``00 00 <dtype code> <ndim>``, ndim big-endian uint32 sizes, data.

    The size the header declares is checked against the data's length and against
    ``max_bytes`` before the data is read, so a damaged header allocates nothing.
    """
    with _opened(path, max_bytes) as (stream, size):
        shape, dtype, body = _idx_header(stream, path)
        expected = math.prod(shape) * dtype.itemsize
        if size is not None:
            _check_idx_length(path, shape, dtype, size - body)
        if expected > max_bytes:
            declared = f"the header declares shape {shape} of {dtype.name}, {expected} bytes,"
            raise _too_big(path, declared, max_bytes)
        data = _read_to_end(stream, path, max_bytes)
    _check_idx_length(path, shape, dtype, len(data))
    return np.frombuffer(data, dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_header(stream: BinaryIO, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """The declared shape, the dtype and the header's length in bytes."""
    start = stream.read(4)
    if len(start) < 4 or start[:2] != b"\x00\x00":
        raise ValueError(
            f"{path}: not an IDX file; expected the magic bytes 00 00 <dtype> <ndim>, "
            f"got {start.hex(' ') or 'an empty file'}"
        )
    code, ndim = start[2], start[3]
    if code not in _IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X}; expected one of {valid}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    body = 4 + 4 * ndim
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(
            f"{path}: truncated IDX header; expected {body} bytes, got {4 + len(sizes)}"
        )
    shape = tuple(int(size) for size in np.frombuffer(sizes, ">u4"))
    return shape, _IDX_DTYPES[code], body


def _check_idx_length(path: Path, shape: tuple[int, ...], dtype: np.dtype, length: int) -> None:
    """Raise unless ``length`` bytes of data are exactly what the header declares."""
    expected = math.prod(shape) * dtype.itemsize
    if length != expected:
        problem = "truncated" if length < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX data {problem}: the header declares shape {shape} of {dtype.name}, "
            f"{expected} bytes, but {length} follow it"
        )


def _looks_like_idx(path: Path) -> bool:
    with path.open("rb") as file:
        start = file.read(4)
    if start[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path) as file:
                start = file.read(4)
        except (OSError, EOFError, zlib.error):
            return False
    return len(start) == 4 and start[:2] == b"\x00\x00" and start[2] in _IDX_DTYPES

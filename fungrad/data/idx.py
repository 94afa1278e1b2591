"""MNIST-style IDX files: a small header (dtype code, dimensions) and big-endian data."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from fungrad.data.dataset import Dataset, PathLike, _dataset, _features
from fungrad.data.files import _path, _read

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def load_idx(images_path: PathLike, labels_path: PathLike) -> Dataset:
    """A dataset from MNIST-style IDX files: images ``(n, rows, cols)`` and labels ``(n,)``.

    Either file may be gzipped (detected by its first bytes). The header (magic number, dtype
    code, dimensions) is checked against the data. Images are flattened to ``(n, rows *
    cols)`` float32 with their values unchanged (0..255 for MNIST).

    Raises:
        DataFileNotFoundError: if a file does not exist.
        ValueError: for a damaged or truncated file, swapped files or mismatched lengths.
    """
    images_path = _path(images_path, "images_path")
    labels_path = _path(labels_path, "labels_path")
    images, labels = _read_idx(images_path), _read_idx(labels_path)
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


def _idx_rows(path: Path, labels: PathLike | None) -> tuple[np.ndarray, np.ndarray | None]:
    """An IDX images file's rows, flattened, and its labels file's labels if given."""
    images = _read_idx(path)
    _check_images(images, path)
    x = _features(images, str(path))
    if labels is None:
        return x, None
    labels_path = _path(labels, "labels")
    y = _read_idx(labels_path)
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


def _read_idx(path: Path) -> np.ndarray:
    """One IDX array: magic ``00 00 <dtype code> <ndim>``, ndim big-endian uint32 sizes, data."""
    data = _read(path)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError(
            f"{path}: not an IDX file; expected the magic bytes 00 00 <dtype> <ndim>, "
            f"got {data[:4].hex(' ') or 'an empty file'}"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX dtype code 0x{code:02X}; expected one of {valid}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    body = 4 + 4 * ndim
    if len(data) < body:
        raise ValueError(f"{path}: truncated IDX header; expected {body} bytes, got {len(data)}")
    shape = tuple(int(size) for size in np.frombuffer(data, ">u4", ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - body != expected:
        problem = "truncated" if len(data) - body < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX data {problem}: the header declares shape {shape} of {dtype.name}, "
            f"{expected} bytes, but {len(data) - body} follow it"
        )
    return np.frombuffer(data, dtype, offset=body).reshape(shape).astype(dtype.newbyteorder("="))


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

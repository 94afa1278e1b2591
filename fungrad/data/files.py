"""Data files on disk: checking a path, and reading its bytes (gunzipped) up to a size cap.

Every loader reads through :func:`_read` or :func:`_opened`, so none reads or inflates more
than ``max_bytes`` (default :data:`MAX_BYTES`) before saying so: a plain file's size is checked
before it is read, and gzip data is inflated in chunks with a running total that stops as
soon as it passes the cap, so a small file that inflates to terabytes costs one chunk.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fungrad.data.dataset import DataFileNotFoundError, PathLike

MAX_BYTES = 4 * 2**30
"""The default cap, in bytes, on what one loader reads, inflates or allocates for an array: 4 GiB.

Below the memory of a typical machine, so that a damaged header or a gzip bomb ends in a
``ValueError`` naming the file instead of exhausting memory. Every loader takes
``max_bytes=`` to raise it for data that really is that large.
"""

_CHUNK = 2**20
_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def _path(path: PathLike, argname: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{argname}: expected a path (str or os.PathLike), got {type(path).__name__}"
        )
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(f"{path}: no such file ({argname})")
    if path.is_dir():
        raise ValueError(f"{path}: expected a file, got a directory ({argname})")
    return path


def _max_bytes(value) -> int:
    """``max_bytes`` checked: a positive integer number of bytes."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"max_bytes: expected a positive integer number of bytes, got {type(value).__name__}"
        )
    if value < 1:
        raise ValueError(f"max_bytes: expected a positive integer number of bytes, got {value}")
    return int(value)


def _size(n: int) -> str:
    """``n`` bytes for people: ``512 bytes``, ``1.5 MiB``, ``4.0 GiB``."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def _too_big(path: Path, what: str, max_bytes: int) -> ValueError:
    """The error for data over the cap: the file, what is too big, the cap and the way out."""
    return ValueError(
        f"{path}: {what} more than {_size(max_bytes)} (max_bytes={max_bytes}); "
        "pass a larger max_bytes=... (or --max-bytes) to read it"
    )


@contextlib.contextmanager
def _opened(path: Path, max_bytes: int) -> Iterator[tuple[BinaryIO, int | None]]:
    """The file's content as a stream, gunzipped if it starts with ``1f 8b``, and its size.

    The size is ``None`` for gzip data (known only once inflated). A plain file larger than
    ``max_bytes`` is refused here, before anything is read.

    Raises:
        ValueError: for a plain file over ``max_bytes``, or damaged gzip data.
    """
    with path.open("rb") as file:
        if file.read(2) != b"\x1f\x8b":
            size = os.fstat(file.fileno()).st_size
            if size > max_bytes:
                raise _too_big(path, f"the file is {_size(size)},", max_bytes)
            file.seek(0)
            yield file, size
            return
        file.seek(0)
        try:
            with gzip.GzipFile(fileobj=file) as stream:
                yield stream, None
        except _GZIP_ERRORS as error:
            raise ValueError(f"{path}: damaged gzip data ({error})") from error


def _read_to_end(stream: BinaryIO, path: Path, max_bytes: int) -> bytes:
    """The rest of ``stream``, read in chunks; an error as soon as it passes ``max_bytes``."""
    chunks, total = [], 0
    while chunk := stream.read(min(_CHUNK, max_bytes - total + 1)):
        total += len(chunk)
        if total > max_bytes:
            raise _too_big(path, "the file inflates to", max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _read(path: Path, max_bytes: int = MAX_BYTES) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic bytes ``1f 8b``.

    Raises:
        ValueError: if the bytes (after inflating) pass ``max_bytes``, or the gzip data is
            damaged.
    """
    with _opened(path, max_bytes) as (stream, _):
        return _read_to_end(stream, path, max_bytes)

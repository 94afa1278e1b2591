"""Data files on disk: checking a path, and reading its bytes (gunzipped when gzipped)."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from fungrad.data.dataset import DataFileNotFoundError, PathLike


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


def _read(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic bytes ``1f 8b``."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: damaged gzip data ({error})") from error
    return data

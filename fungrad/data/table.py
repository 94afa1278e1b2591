"""Comma-separated files: numeric feature columns and one label column.

The module is not named ``csv`` so that ``import csv`` here is always the standard library's.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fungrad.data.dataset import Dataset, PathLike, _dataset
from fungrad.data.files import MAX_BYTES, _max_bytes, _path, _read


def load_csv(
    path: PathLike,
    *,
    label_column: str | int = -1,
    header: bool | None = None,
    max_bytes: int = MAX_BYTES,
) -> Dataset:
    """A dataset from a comma-separated file (gzipped or not): one sample per row.

    Every column except the label column is a numeric feature. The label column decides the
    task: integers (``3``) are class labels, other numbers (``3.0``, ``0.25``) regression
    targets, and any non-numeric value makes the column class names. Class names and negative
    integers are replaced by their index in the sorted unique values; non-negative integers are
    kept as they are, with ``n_classes = max + 1``.

    Args:
        path: the file; gzip is detected by its first bytes, not by the extension.
        label_column: the label column's name (needs a header row) or index (negative counts
            from the end; default the last column).
        header: whether the first row names the columns; ``None`` detects it (a header has a
            non-numeric feature field, or a non-numeric label above a numeric one). With a
            column name for ``label_column``, ``None`` means ``True``.
        max_bytes: the most bytes the file may hold, after gunzipping (default
            :data:`MAX_BYTES`, 4 GiB); checked before the text is parsed, which takes a few
            times the file's size in memory.

    Returns:
        A :class:`Dataset` named after the file.

    Raises:
        DataFileNotFoundError: if the file does not exist.
        ValueError, TypeError: for an empty or ragged file, a non-numeric feature, a bad
            ``label_column``, non-finite values, or a file over ``max_bytes``.
    """
    max_bytes = _max_bytes(max_bytes)
    path = _path(path, "path")
    if header is not None and not isinstance(header, bool):
        raise TypeError(f"header: expected True, False or None, got {header!r}")
    text = _text(path, max_bytes)
    first_line, first, second = _first_rows(text, path)
    width = len(first)
    if width < 2:
        raise ValueError(
            f"{path}: expected at least two columns (features and a label), got {width}"
        )
    if header is None:
        header = _has_header(first, second, label_column, path)
    if header and second is None:
        raise ValueError(f"{path}: no data rows after the header")
    label = _label_index(label_column, first if header else None, width, path)
    skip = first_line if header else first_line - 1
    features = [i for i in range(width) if i != label]
    try:
        try:
            table = _loadtxt(text, skip, None, np.float32)
            x, numeric_labels = table[:, features], table[:, label]
        except ValueError:
            _find_csv_error(text, skip, width, label, path)
            x, numeric_labels = _loadtxt(text, skip, features, np.float32), None
        raw = np.char.strip(_loadtxt(text, skip, [label], str))
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read as CSV ({error})") from error
    y = _labels(raw, numeric_labels, label, path)
    names = [name for i, name in enumerate(first) if i != label] if header else None
    return _dataset(x, y, path.name, str(path), names)


def _text(path: Path, max_bytes: int) -> str:
    try:
        return _read(path, max_bytes).decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: expected UTF-8 text ({error})") from error


def _first_rows(text: str, path: Path) -> tuple[int, list[str], list[str] | None]:
    """The first non-blank row's line number and fields, and the second row (or ``None``)."""
    try:
        rows = _csv_rows(text)
        first_line, first = next(rows)
        second = next(rows, (None, None))[1]
    except StopIteration:
        raise ValueError(f"{path}: no rows; expected comma-separated samples") from None
    except csv.Error as error:
        raise ValueError(f"{path}: not valid CSV ({error})") from error
    return first_line, first, second


def _has_header(first: list[str], second: list[str] | None, label_column, path: Path) -> bool:
    """A header has a non-numeric feature field, or a non-numeric label above a numeric one."""
    if isinstance(label_column, str):
        return True
    width = len(first)
    label = _label_index(label_column, None, width, path)
    fields = [f for i, f in enumerate(first) if i != label]
    numeric_label_below = second is not None and len(second) == width
    numeric_label_below = numeric_label_below and _is_number(second[label])
    return not all(map(_is_number, fields)) or (
        not _is_number(first[label]) and numeric_label_below
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank csv rows with their line numbers, fields stripped."""
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        row = [field.strip() for field in row]
        if any(row):
            yield reader.line_num, row


def _label_index(label_column: str | int, header: list[str] | None, width: int, path: Path) -> int:
    if isinstance(label_column, str):
        if header is None:
            raise ValueError(
                f"label_column: {label_column!r} names a column, which needs a header row; "
                f"{path} is read without one (header=False)"
            )
        if label_column not in header:
            raise ValueError(
                f"label_column: no column named {label_column!r} in {path}; "
                f"columns: {', '.join(header)}"
            )
        return header.index(label_column)
    if isinstance(label_column, bool) or not isinstance(label_column, int):
        raise TypeError(
            f"label_column: expected a column name or index, got {type(label_column).__name__}"
        )
    if not -width <= label_column < width:
        raise ValueError(
            f"label_column: expected an index in [{-width}, {width}) for {path}, "
            f"which has {width} columns, got {label_column}"
        )
    return label_column % width


def _find_csv_error(text: str, skip: int, width: int, label: int, path: Path) -> None:
    """Raise a precise error for the first ragged row or non-numeric feature, if any."""
    for line, row in _csv_rows(text):
        if line <= skip:
            continue
        if len(row) != width:
            raise ValueError(
                f"{path}: line {line}: expected {width} fields like the first row, got {len(row)}"
            )
        for column, field in enumerate(row):
            if column != label and not _is_number(field):
                raise ValueError(
                    f"{path}: line {line}, column {column + 1}: expected a number, got {field!r}"
                )


def _loadtxt(text: str, skip: int, columns: list[int] | None, dtype) -> np.ndarray:
    """The rows below line ``skip``: float32 ``(n, len(columns))``, or strings ``(n,)``."""
    with warnings.catch_warnings():
        # Blank lines are skipped; NumPy warns that they are not counted as rows.
        warnings.filterwarnings("ignore", "Input line", UserWarning)
        return np.loadtxt(
            io.StringIO(text),
            delimiter=",",
            skiprows=skip,
            usecols=columns,
            dtype=dtype,
            comments=None,
            quotechar='"',
            ndmin=2 if dtype is np.float32 else 1,
        )


def _labels(
    raw: np.ndarray, numeric_labels: np.ndarray | None, label: int, path: Path
) -> np.ndarray:
    """Integer labels as int64; other numbers as read (float32); otherwise the strings."""
    empty = np.flatnonzero(np.char.str_len(raw) == 0)
    if empty.size:
        raise ValueError(f"{path}: data row {empty[0] + 1} has an empty label (column {label + 1})")
    try:
        return raw.astype(np.int64)
    except (ValueError, OverflowError):
        return raw if numeric_labels is None else numeric_labels

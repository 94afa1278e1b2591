"""Rows of a CSV file to predict on, matched to the columns the model was trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fungrad.data.dataset import _features
from fungrad.data.files import MAX_BYTES
from fungrad.data.table import (
    _find_csv_error,
    _first_rows,
    _is_number,
    _label_index,
    _labels,
    _loadtxt,
    _text,
)


def _csv_prediction_rows(
    path: Path,
    label_column: str | int,
    features: list[str] | None,
    n_features: int,
    max_bytes: int = MAX_BYTES,
) -> tuple[np.ndarray, np.ndarray | None]:
    text = _text(path, max_bytes)
    first_line, first, second = _first_rows(text, path)
    if features is None:
        columns, label = _unnamed_layout(path, first, first_line, label_column, n_features)
        skip = first_line - 1
    else:
        columns, label = _named_layout(path, first, first_line, label_column, features)
        if second is None:
            raise ValueError(f"{path}: no data rows after the header")
        skip = first_line
    return _read_csv_columns(text, path, skip, len(first), columns, label)


def _unnamed_layout(path, first, first_line, label_column, n_features):
    """Feature columns and label column (or ``None``) of a file read without a header."""
    width = len(first)
    if width == n_features:
        return list(range(width)), None
    if width != n_features + 1:
        raise ValueError(
            f"{path}: line {first_line}: expected {n_features} features (the training data's), "
            f"or {n_features + 1} fields with the label, got {width} fields"
        )
    if isinstance(label_column, str):
        raise ValueError(
            f"label_column: {label_column!r} names a column, but the run was trained on a file "
            "without a header; give the label column's index"
        )
    label = _label_index(label_column, None, width, path)
    return [i for i in range(width) if i != label], label


def _named_layout(path, header, header_line, label_column, features):
    """Feature columns (in the training order) and the label column (or ``None``)."""
    if all(map(_is_number, header)) and not set(header) & set(features):
        raise ValueError(
            f"{path}: line {header_line}: expected a header row naming the columns (the run was "
            f"trained on {', '.join(features)}), got a row of numbers"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: the header names columns twice: {', '.join(repeated)}")
    position = {name: i for i, name in enumerate(header)}
    known = set(features)
    extra = [i for i, name in enumerate(header) if name not in known]
    if isinstance(label_column, str):
        label = position.get(label_column)
    else:
        width = len(features) + 1
        at = label_column % width if -width <= label_column < width else None
        label = extra[0] if extra == [at] and len(header) == width else None
    missing = [name for name in features if name not in position]
    unexpected = [header[i] for i in extra if i != label]
    problems = [f"missing feature columns: {', '.join(missing)}"] if missing else []
    problems += [f"unexpected columns: {', '.join(unexpected)}"] if unexpected else []
    if problems:
        raise ValueError(
            f"{path}: {'; '.join(problems)} (the run was trained on {', '.join(features)}, "
            f"label column {label_column!r})"
        )
    return [position[name] for name in features], label


def _read_csv_columns(text, path, skip, width, columns, label):
    """The float32 feature columns and the raw labels of a CSV text, rows below ``skip``."""
    checked_label = -1 if label is None else label
    try:
        try:
            table = _loadtxt(text, skip, None, np.float32)
            if table.shape[1] != width:
                _find_csv_error(text, skip, width, checked_label, path)
            x = table[:, columns]
            numeric_labels = None if label is None else table[:, label]
        except ValueError as error:
            if str(error).startswith(str(path)):
                raise
            _find_csv_error(text, skip, width, checked_label, path)
            x, numeric_labels = _loadtxt(text, skip, columns, np.float32), None
        raw = None if label is None else np.char.strip(_loadtxt(text, skip, [label], str))
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read as CSV ({error})") from error
    x = _features(x, str(path))
    if raw is None:
        return x, None
    return x, _labels(raw, numeric_labels, label, path)

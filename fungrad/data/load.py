"""Loading by name or path: the format is chosen from the bundled names and the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fungrad.data.bundled import BUNDLED
from fungrad.data.dataset import DataFileNotFoundError, Dataset, PathLike
from fungrad.data.files import MAX_BYTES, _max_bytes, _path
from fungrad.data.idx import _idx_rows, _looks_like_idx, load_idx
from fungrad.data.npz import _npz_rows, load_npz
from fungrad.data.rows import legacy_schema, table_rows
from fungrad.data.schema import TableSchema
from fungrad.data.table import load_csv


def load(
    source: str,
    *,
    label_column: str | int = -1,
    labels: str | None = None,
    max_bytes: int = MAX_BYTES,
    **table_options: Any,
) -> Dataset:
    """Load a dataset by bundled name or from a file, choosing the loader by format.

    Args:
        source: a bundled dataset name (``"digits"``), or a path to an ``.npz`` archive
                (:func:`load_npz`), a ``.csv`` / ``.csv.gz`` file (:func:`load_csv`), or an IDX
                images file (:func:`load_idx`, with ``labels``).
        label_column: the CSV label column, by name or index.
        labels: the IDX labels file that goes with an IDX images ``source``.
        max_bytes: the most bytes a file may hold or inflate to (default :data:`MAX_BYTES`,
                4 GiB); checked before the data is read.
        **table_options: for a CSV file, :func:`load_csv`'s ``header``, ``delimiter``,
                ``task``, ``columns``, ``drop_columns`` and ``missing``.

    Returns:
        A :class:`Dataset`.

    Raises:
        DataFileNotFoundError: if a file does not exist (the message starts with its path).
        ValueError, TypeError: for an unknown name or format, a broken file, or a file over
                ``max_bytes``.

    Example:
        >>> load("digits").x.shape
        (1797, 64)
    """
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source: expected a dataset name or a path, got {type(source).__name__}")
    max_bytes = _max_bytes(max_bytes)
    names = ", ".join(BUNDLED)
    formats = (
        f"a bundled dataset name ({names}), or a path to a .npz, .csv or .csv.gz file, "
        "or to an IDX images file with labels=<IDX labels file>"
    )
    table_options = {k: v for k, v in table_options.items() if v is not None}
    unknown = sorted(set(table_options) - set(TABLE_OPTIONS))
    if unknown:
        raise TypeError(f"load: unexpected keyword argument {unknown[0]!r}")
    if isinstance(source, str) and source in BUNDLED:
        if labels is not None:
            raise ValueError(f"labels: only IDX images files take a labels file, not {source!r}")
        _no_table_options(table_options, source)
        return BUNDLED[source]()
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and len(path.parts) == 1 and not path.suffix:
            raise ValueError(f"source: unknown dataset {source!r}; expected {formats}")
        raise DataFileNotFoundError(f"{path}: no such file (source)")
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")) and labels is None:
        return load_csv(path, label_column=label_column, max_bytes=max_bytes, **table_options)
    _no_table_options(table_options, str(path))
    if labels is not None:
        _path(source, "source")
        return load_idx(source, _path(labels, "labels"), max_bytes=max_bytes)
    if name.endswith(".npz"):
        return load_npz(path, max_bytes=max_bytes)
    if path.is_file() and _looks_like_idx(path):
        raise ValueError(
            f"labels: {path} is an IDX file; pass labels=<path of the IDX labels file> "
            "to load it with its labels"
        )
    raise ValueError(f"source: cannot tell the format of {path}; expected {formats}")


def load_rows(
    source: str | os.PathLike,
    *,
    label_column: str | int = -1,
    labels: PathLike | None = None,
    features: list[str] | None = None,
    n_features: int,
    max_bytes: int = MAX_BYTES,
    table: TableSchema | dict | None = None,
    missing: str = "error",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Feature rows to predict on, and their labels when the file has them, read as in training.

    The format is chosen as :func:`load` chooses it: a bundled name, an ``.npz`` (``"x"``, and
    ``"y"`` if present), an IDX images file (with ``labels`` if given) or a ``.csv`` /
    ``.csv.gz``. A CSV file is read with ``table``, the training file's fitted schema (see
    :mod:`fungrad.data.rows`): columns found by name (or by position without a header),
    encoded as in training. Without ``table`` (a run saved before schemas), every feature
    is numeric: with ``features`` (the training file's header names) columns are found by
    name; without, each row holds ``n_features`` numbers, or ``n_features + 1`` fields with
    the label at ``label_column``'s index.

    Args:
        source: a bundled dataset name or a file path.
        label_column: the training file's label column, by name or index.
        labels: the IDX labels file that goes with an IDX images ``source``.
        features: the training file's feature column names, or ``None``.
        n_features: the number of features the model takes.
        max_bytes: the most bytes a file may hold or inflate to (default :data:`MAX_BYTES`).
        table: the training CSV file's :class:`~fungrad.data.schema.TableSchema` (or its
            ``to_dict()`` data).
        missing: ``"error"`` for rows with missing values, or ``"drop"`` them.

    Returns:
        ``(x, y)``: float32 rows ``(n, n_features)`` in the training column order, and the
        labels as they are in the file (class names stay strings, integers stay integers,
        CSV real numbers are float32), or ``None`` when the file has none.

    Raises:
        DataFileNotFoundError: if a file does not exist.
        ValueError, TypeError: for a width other than the training data's, missing or
            unexpected columns, a ragged row or a non-numeric feature (naming file and line),
            or a file over ``max_bytes``.

    Example:
        >>> x, y = load_rows("digits", n_features=64)
        >>> x.shape, y[:3]
        ((1797, 64), array([0, 1, 2]))
    """
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)):
        raise TypeError(f"n_features: expected a positive integer, got {n_features!r}")
    if n_features < 1:
        raise ValueError(f"n_features: expected a positive integer, got {n_features}")
    if features is not None and len(features) != n_features:
        raise ValueError(f"features: expected {n_features} names (n_features), got {len(features)}")
    max_bytes = _max_bytes(max_bytes)
    if isinstance(source, str) and source in BUNDLED:
        if labels is not None:
            raise ValueError(f"labels: only IDX images files take a labels file, not {source!r}")
        dataset = BUNDLED[source]()
        y = dataset.y if dataset.classes is None else np.asarray(dataset.classes)[dataset.y]
        return _checked_width(dataset.x, n_features, source), y
    path = _rows_path(source)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")) and labels is None:
        if isinstance(table, dict):
            table = TableSchema.from_dict(table)
        if table is None:
            table = legacy_schema(features, n_features, label_column)
        x, y = table_rows(path, table, max_bytes, missing=missing)
        return _checked_width(x, n_features, str(path)), y
    if name.endswith(".npz") and labels is None:
        x, y = _npz_rows(path, max_bytes)
    elif labels is not None or _looks_like_idx(path):
        x, y = _idx_rows(path, labels, max_bytes)
    else:
        raise ValueError(
            f"source: cannot tell the format of {path}; expected a bundled dataset name "
            f"({', '.join(BUNDLED)}), or a path to a .npz, .csv or .csv.gz file, or an IDX "
            "images file"
        )
    return _checked_width(x, n_features, str(path)), y


TABLE_OPTIONS = ("header", "delimiter", "task", "columns", "drop_columns", "missing")
"""The options of :func:`load_csv` that :func:`load` passes on for a CSV file."""


def table_options(settings: dict) -> dict:
    """The table options set in ``settings`` (a run's config) to other than their defaults,
    for :func:`load`.

    Example:
        >>> table_options({"task": "regression", "missing": "error", "seed": 0})
        {'task': 'regression'}
    """
    defaults = {"task": "auto", "missing": "error"}
    return {
        name: settings[name]
        for name in TABLE_OPTIONS
        if settings.get(name) is not None and settings[name] != defaults.get(name)
    }


def _no_table_options(options: dict, source: str) -> None:
    if options:
        name = sorted(options)[0]
        raise ValueError(f"{name}: only CSV files take this option, not {source}")


def _rows_path(source) -> Path:
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source: expected a dataset name or a path, got {type(source).__name__}")
    path = Path(source)
    if not path.exists() and isinstance(source, str) and len(path.parts) == 1 and not path.suffix:
        raise ValueError(
            f"source: unknown dataset {source!r}; expected {', '.join(BUNDLED)} or a file path"
        )
    return _path(source, "source")


def _checked_width(x: np.ndarray, n_features: int, where: str) -> np.ndarray:
    if x.shape[1] != n_features:
        raise ValueError(
            f"{where}: expected {n_features} features per row (the training data's), "
            f"got {x.shape[1]}"
        )
    return x

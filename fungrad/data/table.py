"""Delimited text files (CSV): the columns typed, encoded and recorded, never guessed silently.

:func:`load_csv` reads the file (:mod:`fungrad.data.csvfile`), then decides, in this order:

1. **Columns.** An unnamed, ``rownames`` or ``Unnamed: 0`` first column holding
   ``0..n-1``, ``1..n`` or a distinct text per row (R's row names) is a row index and is
   dropped, with a note. ``drop_columns``
   leaves columns out; ``columns`` keeps only the features named.
2. **Missing values** (``NA``, ``NaN``, empty, ``null``, ``?``, ``N/A``, ...) in the columns
   used: an error naming how many, in which columns, and the first lines; with
   ``missing="drop"`` those rows are dropped, with a note saying how many.
3. **Features** (:mod:`fungrad.data.encoding`): numbers, yes/no as 1/0, text one-hot.
4. **Labels** (:mod:`fungrad.data.labels`): classification or regression, and the classes.

Every decision is kept in the returned dataset's ``table`` (a
:class:`~fungrad.data.schema.TableSchema`), and said in one line of its ``notes``.
The module is not named ``csv`` so that ``import csv`` is always the standard library's.
"""

from __future__ import annotations

import numpy as np

from fungrad.data.csvfile import DELIMITERS, RawTable, missing_mask, read_table
from fungrad.data.dataset import Dataset, PathLike
from fungrad.data.encoding import fit_column, shown
from fungrad.data.files import MAX_BYTES, _max_bytes, _path
from fungrad.data.labels import TASKS, fit_labels
from fungrad.data.schema import INDEX_NAMES, TableSchema, column_index, column_list, column_name

MISSING_POLICIES = ("error", "drop")


def load_csv(
    path: PathLike,
    *,
    label_column: str | int = -1,
    header: bool | None = None,
    delimiter: str | None = None,
    task: str = "auto",
    columns: list | str | None = None,
    drop_columns: list | str | None = None,
    missing: str = "error",
    max_bytes: int = MAX_BYTES,
) -> Dataset:
    """A dataset from a delimited text file (gzipped or not): one sample per row.

    Args:
        path: the file; gzip is detected by its first bytes, not by the extension.
        label_column: the label column's header name, or its index (negative counts from
            the end; default the last column).
        header: whether the first row names the columns; ``None`` detects it (a word above
            a column of numbers is a name).
        delimiter: ``","``, ``";"``, ``"\\t"`` or another single character; ``None`` detects
            one of the first three.
        task: ``"classification"``, ``"regression"`` or ``"auto"`` (see
            :mod:`fungrad.data.labels` for the rule).
        columns: the feature columns to use (names or indices), or ``None`` for all.
        drop_columns: columns to leave out (names or indices).
        missing: ``"error"`` (default) or ``"drop"`` the rows with missing values.
        max_bytes: the most bytes the file may hold once inflated (default
            :data:`~fungrad.data.MAX_BYTES`).

    Returns:
        A :class:`Dataset` with ``table`` (the fitted schema) and ``notes``.

    Raises:
        DataFileNotFoundError: if the file does not exist.
        ValueError, TypeError: for a bad argument or a file the rules refuse; the message
            names the file, the line and the column, and the option that resolves it.

    Example:
        >>> import pathlib, tempfile
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "pets.csv"
        >>> _ = file.write_text('"",weight,indoor,kind\\n1,4.0,yes,cat\\n2,30,no,dog\\n'
        ...                     '3,5,yes,cat\\n4,25,no,dog\\n')
        >>> pets = load_csv(file)
        >>> pets.x.tolist(), pets.classes
        ([[4.0, 1.0], [30.0, 0.0], [5.0, 1.0], [25.0, 0.0]], ['cat', 'dog'])
        >>> print(pets.notes[0])
        pets.csv: column '' holds the row numbers 1..4: dropped as an index
    """
    max_bytes = _max_bytes(max_bytes)
    path = _path(path, "path")
    _check_options(header, delimiter, task, missing)
    if isinstance(label_column, str) and not label_column.lstrip("-").isdigit() and header is None:
        header = True
    raw, notes = read_table(path, max_bytes, delimiter=delimiter, header=header)
    schema, x, y, more = fit_table(
        raw, label_column=label_column, task=task, columns=columns,
        drop_columns=drop_columns, missing=missing,
    )  # fmt: skip
    n_classes = None if schema.classes is None else len(schema.classes)
    features = schema.input_names() if raw.header else None
    x = x.astype(np.float32)
    return Dataset(x, y, path.name, n_classes, schema.classes, features, schema, (*notes, *more))


def _check_options(header, delimiter, task, missing) -> None:
    if header is not None and not isinstance(header, bool):
        raise TypeError(f"header: expected True, False or None, got {header!r}")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise ValueError(
            f"delimiter: expected one character such as {', '.join(map(repr, DELIMITERS))}, "
            f"got {delimiter!r}"
        )
    if delimiter is not None and delimiter in '"\r\n ':
        raise ValueError(f"delimiter: {delimiter!r} cannot separate fields")
    if task not in TASKS:
        raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing: expected 'error' or 'drop', got {missing!r}")


def fit_table(raw: RawTable, *, label_column, task, columns, drop_columns, missing):
    """Decide the schema of a training table and encode it: ``(schema, x, y, notes)``."""
    where, names = str(raw.path), raw.names
    label = column_index(label_column, names, raw.width, "label_column", where)
    kept, dropped, notes = _used_columns(raw, label, columns, drop_columns)
    rows, note = _complete_rows(raw, [*kept, label], missing)
    notes += [note] if note else []
    lines = None if raw.lines is None else raw.lines[rows]
    label_name = column_name(label, names)
    task, classes, y, note = fit_labels(raw.column(label)[rows], lines, label_name, task, where)
    notes += [f"{raw.path.name}: {note}"] if note else []
    features, blocks = [], []
    for j in kept:
        cells = raw.column(j)[rows]
        column, block = fit_column(
            column_name(j, names), cells, lines, where, decimal_comma=raw.delimiter != ","
        )
        features.append(column)
        blocks.append(block)
        if column.kind != "number":
            notes.append(f"{raw.path.name}: {_encoding_note(column)}")
    schema = TableSchema(
        raw.delimiter, raw.header, raw.width, label_name, tuple(features),
        tuple(column_name(j, names) for j in dropped), task, classes,
    )  # fmt: skip
    x = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(rows), 0))
    return schema, x, y, notes


def _used_columns(raw: RawTable, label: int, columns, drop_columns):
    """The feature columns kept, the columns dropped, and a note per index column."""
    where, names, width = str(raw.path), raw.names, raw.width
    drop = column_list(drop_columns, names, width, "drop_columns", where) or []
    keep = column_list(columns, names, width, "columns", where)
    if label in drop or (keep is not None and label in keep):
        argname = "drop_columns" if label in drop else "columns"
        raise ValueError(
            f"{argname}: column {shown(column_name(label, names))} is the label column; "
            "name feature columns only"
        )
    notes = []
    if keep is None and label != 0 and 0 not in drop and _is_index(raw):
        drop = [0, *drop]
        notes.append(
            f"{raw.path.name}: column {shown(names[0])} holds {_index_range(raw)}: "
            "dropped as an index"
        )
    features = keep if keep is not None else [j for j in range(width) if j not in (*drop, label)]
    features = [j for j in features if j not in drop]
    if not features:
        raise ValueError(f"columns: no feature columns left in {where}")
    dropped = [j for j in range(width) if j not in (*features, label)]
    return features, dropped, notes


def _is_index(raw: RawTable) -> bool:
    if raw.names is None or raw.names[0] not in INDEX_NAMES:
        return False
    return _index_range(raw) is not None


def _index_range(raw: RawTable) -> str | None:
    """``"the row numbers 1..n"`` (or ``0..n-1``), ``"row names"``, or ``None``."""
    cells = raw.column(0)
    try:
        values = cells.astype(np.float64)
    except ValueError:
        distinct = np.unique(cells).size == cells.size
        return "row names (a distinct text per row)" if distinct else None
    n = values.shape[0]
    for start in (0, 1):
        if np.array_equal(values, np.arange(start, start + n)):
            return f"the row numbers {start}..{start + n - 1}"
    return None


def _complete_rows(raw: RawTable, used: list[int], missing: str) -> tuple[np.ndarray, str | None]:
    """The rows without missing values in ``used`` columns, and a note if some were dropped."""
    all_rows = np.arange(raw.n_rows)
    if raw.cells is None:
        return all_rows, None
    holes = missing_mask(raw.cells[:, used])
    bad = np.flatnonzero(holes.any(axis=1))
    if bad.size == 0:
        return all_rows, None
    counts = holes.sum(axis=0)
    per_column = ", ".join(
        f"{shown(column_name(j, raw.names))} ({int(c)})"
        for j, c in zip(used, counts, strict=True)
        if c
    )
    if missing == "drop":
        if bad.size == raw.n_rows:
            raise ValueError(f"{raw.path}: every row has a missing value, in {per_column}")
        return np.flatnonzero(~holes.any(axis=1)), (
            f"{raw.path.name}: dropped {bad.size} of {raw.n_rows} rows with missing values, "
            f"in {per_column}"
        )
    first = ", ".join(str(line) for line in raw.lines[bad[:3]])
    raise ValueError(
        f"{raw.path}: {int(counts.sum())} missing values (NA, empty, ...) in {bad.size} rows, "
        f"in columns {per_column}; first at lines {first}; drop those rows with --missing drop "
        "(missing='drop'), or leave the columns out with --drop-columns"
    )


def _encoding_note(column) -> str:
    if column.kind == "decimal":
        return f"column {shown(column.name)}: numbers with a decimal comma (7,5 read as 7.5)"
    if column.kind == "bool":
        return f"column {shown(column.name)}: true/yes read as 1, false/no as 0"
    levels = ", ".join(column.levels[:6]) + (", ..." if len(column.levels) > 6 else "")
    return (
        f"column {shown(column.name)}: text, one-hot encoded as {len(column.levels)} columns "
        f"({levels})"
    )


def training_levels(parts, dataset: Dataset):
    """Keep only the one-hot levels that the training part holds: ``(parts, dataset)``.

    A level seen only in the validation or test rows is then encoded as all zeros there, as
    a level unseen in training is at prediction time. ``parts`` is a
    :class:`~fungrad.data.Split` of ``dataset``; both come back with the columns of the
    other levels removed, and the dataset's ``table`` and ``features`` updated.
    """
    schema = dataset.table
    if schema is None or all(c.kind != "onehot" for c in schema.features):
        return parts, dataset
    seen = np.asarray(parts.x_train).any(axis=0)
    keep, columns, start = [], [], 0
    for column in schema.features:
        mask = seen[start : start + column.width] if column.kind == "onehot" else [True]
        start += column.width
        keep.extend(mask)
        if column.kind == "onehot":
            levels = tuple(level for level, k in zip(column.levels, mask, strict=True) if k)
            column = column._replace(levels=levels)
        columns.append(column)
    keep = np.asarray(keep, dtype=bool)
    if keep.all():
        return parts, dataset
    schema = schema._replace(features=tuple(columns))
    parts = parts._replace(
        **{name: getattr(parts, name)[:, keep] for name in ("x_train", "x_val", "x_test")}
    )
    features = schema.input_names() if dataset.features is not None else None
    note = f"{dataset.name}: {int((~keep).sum())} text levels not in the training part are "
    note += "encoded as all zeros"
    dataset = dataset._replace(
        x=dataset.x[:, keep], table=schema, features=features, notes=(*dataset.notes, note)
    )
    return parts, dataset

"""New rows of a table, read with the schema fitted on the training file.

The file is read with the training file's delimiter and header setting. With a header,
columns are found by name, in any order: every feature column must be there, the label
column and the columns dropped in training may be, and any other column is an error (it
may mean the wrong file). Without a header, a row holds all the training file's columns,
or all of them but the label. Missing values are an error naming their lines (or, with
``missing="drop"``, the rows are dropped as in training). Each feature column is encoded as
in training; a text value the training rows never held is encoded as all zeros, with a
warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fungrad.data.csvfile import RawTable, is_number, missing_mask, read_table
from fungrad.data.encoding import Column, encode_column, shown
from fungrad.data.labels import label_values
from fungrad.data.schema import TableSchema


def table_rows(
    path: Path, schema: TableSchema, max_bytes: int, *, missing: str = "error"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Model inputs (float32, the schema's encodings) and labels (or ``None``) of a file.

    Raises:
        ValueError: for missing or unexpected columns, a width other than the training
            file's, missing values, or cells a column's encoding cannot read.
    """
    raw, _ = read_table(path, max_bytes, delimiter=schema.delimiter, header=schema.header)
    if schema.header:
        positions, label = _named(raw, schema)
    else:
        positions, label = _numbered(raw, schema)
    if label is not None and missing_mask(raw.column_text(label)).all():
        label = None  # an empty label column: rows to predict
    rows = _complete(raw, [*positions, *([] if label is None else [label])], missing)
    lines = None if raw.lines is None else raw.lines[rows]
    where = str(path)
    blocks = [
        encode_column(column, _cells(raw, j, column)[rows], lines, where)
        for column, j in zip(schema.features, positions, strict=True)
    ]
    x = np.concatenate(blocks, axis=1).astype(np.float32)
    if label is None:
        return x, None
    cells = raw.column_text(label)[rows]
    return x, label_values(cells, schema.task, schema.classes, schema.label, lines, where)


def _cells(raw: RawTable, j: int, column) -> np.ndarray:
    """A number column's cells as read (floats stay floats); other kinds need the text."""
    return raw.column(j) if column.kind == "number" else raw.column_text(j)


def legacy_schema(
    features: list[str] | None, n_features: int, label_column: str | int
) -> TableSchema:
    """The schema of a run saved before schemas were: numeric features, comma-separated."""
    if features is None:
        width = n_features + 1
        label = label_column % width if isinstance(label_column, int) else -1
        columns = tuple(Column(j, "number") for j in range(width) if j != label)
        return TableSchema(",", False, width, label, columns, (), "unknown", None)
    columns = tuple(Column(name, "number") for name in features)
    return TableSchema(",", True, n_features + 1, label_column, columns, (), "unknown", None)


def _named(raw: RawTable, schema: TableSchema) -> tuple[list[int], int | None]:
    names = raw.names
    wanted = [column.name for column in schema.features]
    if all(map(is_number, names)) and not set(names) & set(wanted):
        raise ValueError(
            f"{raw.path}: line 1: expected a header row naming the columns (the run was "
            f"trained on {', '.join(wanted)}), got a row of numbers"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{raw.path}: the header names columns twice: {', '.join(repeated)}")
    position = {name: j for j, name in enumerate(names)}
    missing = [name for name in wanted if name not in position]
    known = {*wanted, *schema.dropped}
    label = position.get(schema.label) if isinstance(schema.label, str) else None
    extra = [name for name in names if name not in known and position[name] != label]
    if label is None and not isinstance(schema.label, str) and len(extra) == 1:
        label, extra = position[extra[0]], []  # a label column known only by its index
    problems = [f"missing feature columns: {', '.join(missing)}"] if missing else []
    problems += [f"unexpected columns: {', '.join(extra)}"] if extra else []
    if problems:
        raise ValueError(
            f"{raw.path}: {'; '.join(problems)} (the run was trained on {', '.join(wanted)}, "
            f"label column {shown(schema.label)})"
        )
    return [position[name] for name in wanted], label


def _numbered(raw: RawTable, schema: TableSchema) -> tuple[list[int], int | None]:
    indices = [column.name for column in schema.features]
    if raw.width == schema.width:
        return indices, schema.label
    if raw.width == schema.width - 1:
        return [j - (j > schema.label) for j in indices], None
    raise ValueError(
        f"{raw.path}: expected {schema.width} fields per row like the training file, or "
        f"{schema.width - 1} without the label column, got {raw.width}"
    )


def _complete(raw: RawTable, used: list[int], missing: str) -> np.ndarray:
    rows = np.arange(raw.n_rows)
    if raw.cells is None:
        return rows
    holes = missing_mask(raw.cells[:, used]).any(axis=1)
    if not holes.any():
        return rows
    if missing == "drop":
        return rows[~holes]
    bad = np.flatnonzero(holes)
    first = ", ".join(str(line) for line in raw.lines[bad[:3]])
    raise ValueError(
        f"{raw.path}: {bad.size} rows have missing values (NA, empty, ...) in the columns the "
        f"model uses; first at lines {first}"
    )

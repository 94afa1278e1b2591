"""The fitted description of a table: which columns are used, how each is encoded, the task.

A :class:`TableSchema` is what :func:`fungrad.data.load_csv` decided about a training file.
A run saves it (:meth:`TableSchema.to_dict`, plain JSON), and prediction reads new files with
it, so new rows go through exactly the training file's steps.
"""

from __future__ import annotations

from typing import NamedTuple

from fungrad.data.encoding import Column, shown

INDEX_NAMES = ("", "rownames", "Unnamed: 0")
"""Header names of a first column that may be a row index (pandas, R's ``write.csv``)."""


class TableSchema(NamedTuple):
    """What was decided about a training table.

    Attributes:
        delimiter: the field delimiter.
        header: whether the file has a header row.
        width: the file's number of columns.
        label: the label column: its header name, or its index without a header.
        features: the feature columns, in the order of the model's inputs.
        dropped: the columns left out (index columns, ``drop_columns``, not in ``columns``).
        task: ``"classification"`` or ``"regression"``.
        classes: the class values in index order, or ``None`` for a regression.
    """

    delimiter: str
    header: bool
    width: int
    label: str | int
    features: tuple[Column, ...]
    dropped: tuple[str | int, ...]
    task: str
    classes: list | None

    def input_names(self) -> list[str]:
        """The names of the model's inputs (``island=Dream`` for a one-hot level).

        Example:
            >>> schema = TableSchema(",", True, 3, "y", (Column("a", "number"),
            ...     Column("c", "onehot", ("u", "v"))), (), "regression", None)
            >>> schema.input_names()
            ['a', 'c=u', 'c=v']
        """
        return [name for column in self.features for name in column.input_names()]

    def to_dict(self) -> dict:
        """The schema as JSON-ready data; :meth:`from_dict` reads it back."""
        return {
            "delimiter": self.delimiter,
            "header": self.header,
            "width": self.width,
            "label": self.label,
            "features": [
                {"name": c.name, "kind": c.kind, "levels": list(c.levels)} for c in self.features
            ],
            "dropped": list(self.dropped),
            "task": self.task,
            "classes": self.classes,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TableSchema:
        """A schema from :meth:`to_dict`'s data.

        Raises:
            ValueError: if a key is missing or a column kind is unknown.
        """
        try:
            features = tuple(
                Column(c["name"], c["kind"], tuple(c.get("levels", ()))) for c in data["features"]
            )
            schema = cls(
                str(data["delimiter"]), bool(data["header"]), int(data["width"]), data["label"],
                features, tuple(data.get("dropped", ())), str(data["task"]), data.get("classes"),
            )  # fmt: skip
        except (KeyError, TypeError) as error:
            raise ValueError(f"table schema: missing or malformed entry ({error!r})") from error
        unknown = [
            c.kind for c in features if c.kind not in ("number", "decimal", "bool", "onehot")
        ]
        if unknown:
            raise ValueError(f"table schema: unknown column kind {unknown[0]!r}")
        _check_positions(schema)
        return schema


def _check_positions(schema: TableSchema) -> None:
    """Columns known by name need a header; known by index, they must lie in the file."""
    names = [c.name for c in schema.features]
    if schema.header:
        bad = [n for n in names if not isinstance(n, str)]
    else:
        everything = [*names, schema.label]
        bad = [n for n in everything if type(n) is not int or not 0 <= n < schema.width]
        bad += [] if bad or len(set(everything)) == len(everything) else ["a repeated index"]
    if schema.width < 2 or not names or bad:
        raise ValueError(
            f"table schema: damaged column list ({bad[0] if bad else 'too few columns'!r}) for "
            f"a file of {schema.width} columns"
        )


def column_index(
    column: str | int, names: list[str] | None, width: int, argname: str, where: str
) -> int:
    """A column given by header name or by index (negative counts from the end).

    Raises:
        TypeError: for something neither a name nor an integer.
        ValueError: for an unknown name, a name without a header, or an index out of range.
    """
    if (
        isinstance(column, str)
        and column.lstrip("-").isdigit()
        and (names is None or column not in names)
    ):
        column = int(column)
    if isinstance(column, str):
        if names is None:
            raise ValueError(
                f"{argname}: {column!r} names a column, which needs a header row; {where} has "
                "none, so give the column's index"
            )
        if column not in names:
            raise ValueError(
                f"{argname}: no column named {column!r} in {where}; columns: {', '.join(names)}"
            )
        return names.index(column)
    if isinstance(column, bool) or not hasattr(column, "__index__"):
        raise TypeError(f"{argname}: expected a column name or index, got {type(column).__name__}")
    column = int(column)
    if not -width <= column < width:
        raise ValueError(
            f"{argname}: expected an index in [{-width}, {width}) for {where}, which has "
            f"{width} columns, got {column}"
        )
    return column % width


def column_list(value, names, width, argname: str, where: str) -> list[int] | None:
    """``columns`` / ``drop_columns`` as indices: a list of names or indices, or a
    comma-separated string of them; ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{argname}: expected a list of column names or indices, got {value!r}")
    indices = [column_index(c, names, width, argname, where) for c in value]
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    if repeated:
        raise ValueError(f"{argname}: column {_name(repeated[0], names)} is given twice")
    return indices


def _name(index: int, names: list[str] | None) -> str:
    return shown(names[index] if names is not None else index)


def column_name(index: int, names: list[str] | None) -> str | int:
    """How a schema records column ``index``: its header name, or the index."""
    return names[index] if names is not None else index

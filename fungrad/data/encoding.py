"""Feature columns of a table: numbers as they are, yes/no as 1/0, text one-hot encoded.

A feature column's kind is fitted on the training file and saved with the run, so new rows
are encoded the same way:

* ``"number"``: every cell reads as a number; used as it is.
* ``"decimal"``: in a file not separated by commas, numbers written with a decimal comma
  (``7,4`` is 7.4), as spreadsheets in many languages write them.
* ``"bool"``: every cell is one of ``true``/``false``/``yes``/``no`` (any case); ``1`` for
  ``true``/``yes``, ``0`` for ``false``/``no``.
* ``"onehot"``: any other text. Each of the ``k`` levels (the distinct texts, sorted) gets a
  column holding ``1`` where the row has that level, else ``0``. A level that the training
  rows never held is encoded as all zeros, with a warning.

A column mixing numbers with other text is an error (a typo or an unmarked missing value is
likelier than a column of categories), and so is a text column of more than
:data:`MAX_LEVELS` levels (names and identifiers make useless, huge encodings).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from fungrad.data.csvfile import is_number

MAX_LEVELS = 100
"""The most levels a text column may have to be one-hot encoded."""

FLOAT32_MAX = float(np.finfo(np.float32).max)
TRUE = frozenset({"true", "yes"})
FALSE = frozenset({"false", "no"})


class Column(NamedTuple):
    """How one feature column is encoded.

    Attributes:
        name: the column's header name, or its index in a file without a header.
        kind: ``"number"``, ``"decimal"``, ``"bool"`` or ``"onehot"``.
        levels: the one-hot levels in the order of their columns (else empty).
    """

    name: str | int
    kind: str
    levels: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        """How many model inputs the column becomes."""
        return len(self.levels) if self.kind == "onehot" else 1

    def input_names(self) -> list[str]:
        """The model inputs' names: the column's, or ``name=level`` per one-hot level."""
        if self.kind == "onehot":
            return [f"{self.name}={level}" for level in self.levels]
        return [str(self.name)]


def shown(name: str | int) -> str:
    """A column as messages name it: ``'price'``, or ``index 3`` without a header."""
    return f"index {name}" if isinstance(name, int) else repr(name)


def fit_column(
    name: str | int,
    cells: np.ndarray,
    lines: np.ndarray | None,
    where: str,
    *,
    decimal_comma: bool = False,
) -> tuple[Column, np.ndarray]:
    """The kind of a feature column, from its (non-missing) training cells, and the cells
    encoded (as :func:`encode_column` encodes them).

    Raises:
        ValueError: for a column mixing numbers and other text, or with more than
            :data:`MAX_LEVELS` text levels; the message names the file, column and line.
    """
    try:
        values = cells.astype(np.float64)
    except ValueError:
        values = None
    if values is not None:
        column = Column(name, "number")
        return column, _finite(column, values, cells, lines, where)[:, None]
    if decimal_comma and _decimal_commas(cells):
        column = Column(name, "decimal")
        return column, encode_column(column, cells, lines, where)
    numeric = _numeric_mask(cells)
    lowered = np.char.lower(cells)
    if np.isin(lowered, list(TRUE | FALSE)).all():
        column = Column(name, "bool")
        return column, encode_column(column, cells, lines, where)
    if numeric.any():
        k = int(np.flatnonzero(~numeric)[0])
        raise ValueError(
            f"{where}: {_at(lines, k)}column {shown(name)} mixes numbers with text "
            f"({str(cells[k])!r}); mark missing values as NA, or leave the column out with "
            "--drop-columns"
        )
    levels = np.unique(cells)
    if levels.size > MAX_LEVELS:
        raise ValueError(
            f"{where}: column {shown(name)} holds text with {levels.size} distinct values "
            f"(at most {MAX_LEVELS} are one-hot encoded); leave it out with --drop-columns"
        )
    column = Column(name, "onehot", tuple(levels.tolist()))
    return column, encode_column(column, cells, lines, where)


def encode_column(
    column: Column, cells: np.ndarray, lines: np.ndarray | None, where: str
) -> np.ndarray:
    """Column ``cells`` ``(n,)`` as float64 model inputs ``(n, column.width)``.

    Raises:
        ValueError: for a cell the column's kind cannot read, naming the file and line.
    """
    if column.kind == "number":
        return _numbers(column, cells, lines, where)[:, None]
    if column.kind == "decimal":
        return _numbers(column, np.char.replace(cells, ",", "."), lines, where)[:, None]
    if column.kind == "bool":
        lowered = np.char.lower(cells)
        bad = np.flatnonzero(~np.isin(lowered, list(TRUE | FALSE)))
        if bad.size:
            raise ValueError(
                f"{where}: {_at(lines, bad[0])}column {shown(column.name)}: expected "
                f"true/false or yes/no, got {str(cells[bad[0]])!r}"
            )
        return np.isin(lowered, list(TRUE)).astype(np.float64)[:, None]
    encoded = (cells[:, None] == np.asarray(column.levels, dtype=str)[None, :]).astype(np.float64)
    unseen = np.flatnonzero(encoded.sum(axis=1) == 0)
    if unseen.size:
        warnings.warn(
            f"{where}: column {shown(column.name)}: {unseen.size} rows hold values not seen in "
            f"training (first {str(cells[unseen[0]])!r}, {_at(lines, unseen[0]).rstrip(', ')}); "
            "they are encoded as all zeros",
            UserWarning,
            stacklevel=2,
        )
    return encoded


def _numbers(column: Column, cells: np.ndarray, lines, where: str) -> np.ndarray:
    numeric = _numeric_mask(cells)
    if not numeric.all():
        k = int(np.flatnonzero(~numeric)[0])
        raise ValueError(
            f"{where}: {_at(lines, k)}column {shown(column.name)}: expected a number, "
            f"got {str(cells[k])!r}"
        )
    return _finite(column, cells.astype(np.float64), cells, lines, where)


def _finite(column: Column, values, cells, lines, where: str) -> np.ndarray:
    """``values``, unless one is NaN, infinite, or beyond float32's range (which the model's
    inputs are read into)."""
    bad = np.flatnonzero(~(np.abs(values) <= FLOAT32_MAX))
    if bad.size:
        raise ValueError(
            f"{where}: {_at(lines, bad[0])}column {shown(column.name)}: expected a finite "
            f"number within float32's range, got {str(cells[bad[0]])!r} ({bad.size} such values)"
        )
    return values


def _decimal_commas(cells: np.ndarray) -> bool:
    """Whether every cell is a number, some written with a decimal comma (``-7,25``)."""
    with_commas = np.char.count(cells, ",") == 1
    if not with_commas.any() or (np.char.count(cells, ".") > 0).any():
        return False
    return bool(_numeric_mask(np.char.replace(cells, ",", ".")).all())


def _numeric_mask(cells: np.ndarray) -> np.ndarray:
    """Which cells read as numbers (vectorised; one test per distinct text otherwise)."""
    try:
        cells.astype(np.float64)
        return np.ones(cells.shape, dtype=bool)
    except ValueError:
        distinct, inverse = np.unique(cells, return_inverse=True)
        return np.array([is_number(c) for c in distinct], dtype=bool)[inverse]


def _at(lines: np.ndarray | None, k: int) -> str:
    """``"line 12, "`` for data row ``k``, or ``"data row k+1, "`` when lines are unknown."""
    return f"line {lines[k]}, " if lines is not None else f"data row {k + 1}, "

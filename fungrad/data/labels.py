"""A table's label column: classification or regression, and the classes.

Numeric labels stay numbers: ``2`` and ``2.0`` are one class, and classes are ordered by
value (``2 < 10``). Text labels are class names, ordered as text. The classes are the
distinct values that occur, so a label value never sizes an array by itself: labels
``{0, 4000000000}`` make two classes.

``task="auto"`` decides as follows, and says so in a note:

* text labels: classification;
* numbers that are not all integers (``2.5``): regression;
* integers: classification when there are at most :data:`MAX_AUTO_CLASSES` distinct values
  and at most one per ten rows (two values always make a classification), else regression.
  Counts and prices are integers with many values; class codes are a few values repeated.

A classification with more classes than half the rows (of ten or more rows), or more than
:data:`MAX_CLASSES`, is an error suggesting ``--task regression``: nothing can be learnt
about a class seen once.
"""

from __future__ import annotations

import numpy as np

from fungrad.data.csvfile import is_number
from fungrad.data.encoding import FLOAT32_MAX, shown

TASKS = ("auto", "classification", "regression")
MAX_AUTO_CLASSES = 100
"""The most distinct integer labels that ``task="auto"`` reads as classes."""
MAX_CLASSES = 10_000
"""The most classes a classification may have."""


def fit_labels(
    cells: np.ndarray, lines: np.ndarray | None, name: str | int, task: str, where: str
) -> tuple[str, list | None, np.ndarray, str | None]:
    """Type the label cells: ``(task, classes, y, note)``.

    ``y`` is int64 class indices into ``classes`` for a classification, float32 targets
    for a regression (``classes`` is then ``None``). ``note`` says what ``auto`` chose.

    Raises:
        ValueError: for text labels with ``task="regression"``, non-finite numbers, or a
            class count that cannot make sense.
    """
    values = _numbers(cells)
    n = cells.shape[0]
    if values is None:
        _refuse_mixed(cells, lines, name, where)
        if task == "regression":
            k = next(i for i, c in enumerate(cells) if not is_number(c))
            raise ValueError(
                f"{where}: {_at(lines, k)}label column {shown(name)}: regression needs "
                f"numbers, got {str(cells[k])!r}"
            )
        classes, y = np.unique(cells, return_inverse=True)
        note = (
            f"label column {shown(name)}: text, {classes.size} classes" if task == "auto" else None
        )
        return (
            "classification",
            _checked(classes.tolist(), n, name, where),
            y.astype(np.int64),
            note,
        )
    bad = np.flatnonzero(~(np.abs(values) <= FLOAT32_MAX))
    if bad.size:
        raise ValueError(
            f"{where}: {_at(lines, bad[0])}label column {shown(name)}: expected a finite "
            f"number within float32's range, got {str(cells[bad[0]])!r}"
        )
    integers = bool(np.all(values == np.round(values)))
    distinct = np.unique(values)
    note = None
    if task == "auto":
        task, note = _auto(integers, distinct.size, n, name)
    if task == "regression":
        return "regression", None, values.astype(np.float32), note
    classes = [_plain(v) for v in distinct.tolist()]
    y = np.searchsorted(distinct, values).astype(np.int64)
    return "classification", _checked(classes, n, name, where), y, note


def label_values(
    cells: np.ndarray, task: str, classes: list | None, name, lines, where: str
) -> np.ndarray:
    """New rows' label cells typed like the training labels: numbers or class names.

    ``task`` is the schema's (``"unknown"`` for a run saved without one: labels are then
    typed by what they look like).

    Raises:
        ValueError: for text where the training labels were numbers.
    """
    if classes is not None and any(isinstance(c, str) for c in classes):
        return cells
    values = _numbers(cells)
    if values is None:
        if task == "unknown":
            return cells
        k = next(i for i, c in enumerate(cells) if not is_number(c))
        raise ValueError(
            f"{where}: {_at(lines, k)}label column {shown(name)}: expected a number like "
            f"the training labels, got {str(cells[k])!r}"
        )
    if task == "regression":
        return values.astype(np.float32)
    if np.all(values == np.round(values)) and np.all(np.abs(values) < 2**53):
        return values.astype(np.int64)
    return values if task != "unknown" else values.astype(np.float32)


def _refuse_mixed(cells: np.ndarray, lines, name, where: str) -> None:
    """Numbers with a few words among them are a typo or an unmarked missing value."""
    distinct, first = np.unique(cells, return_index=True)
    numeric = np.array([is_number(c) for c in distinct], dtype=bool)
    if numeric.any():
        k = int(first[~numeric].min())
        raise ValueError(
            f"{where}: {_at(lines, k)}label column {shown(name)} mixes numbers with text "
            f"({str(cells[k])!r}); mark missing values as NA, or fix the label"
        )


def _auto(integers: bool, distinct: int, n: int, name) -> tuple[str, str]:
    rule = "at most 100 distinct integers, and at most one per 10 rows"
    if not integers:
        return "regression", f"label column {shown(name)}: real numbers, so regression"
    if distinct <= MAX_AUTO_CLASSES and (distinct <= 2 or distinct * 10 <= n):
        return "classification", (
            f"label column {shown(name)}: {distinct} distinct integers in {n} rows, so "
            f"classification ({rule}); --task regression to predict them as numbers"
        )
    return "regression", (
        f"label column {shown(name)}: {distinct} distinct integers in {n} rows, so "
        f"regression (classes need {rule}); --task classification to override"
    )


def _checked(classes: list, n: int, name, where: str) -> list:
    count = len(classes)
    if count > MAX_CLASSES or (n >= 10 and count * 2 > n):
        raise ValueError(
            f"{where}: label column {shown(name)} holds {count} classes in {n} rows; a "
            "classification needs several rows per class: use --task regression for numbers, "
            "or check the label column"
        )
    return classes


def _numbers(cells: np.ndarray) -> np.ndarray | None:
    try:
        return cells.astype(np.float64)
    except ValueError:
        return None


def _plain(value: float) -> int | float:
    """A class value as JSON keeps it: integers as ``int``."""
    return int(value) if value == round(value) and abs(value) < 2**63 else value


def _at(lines, k: int) -> str:
    return f"line {lines[k]}, " if lines is not None else f"data row {k + 1}, "

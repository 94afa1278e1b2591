"""The :class:`Dataset` every loader returns, and the checks that turn raw arrays into one."""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

from fungrad._checks import check_finite

PathLike = str | os.PathLike


class Dataset(NamedTuple):
    """A dataset in memory.

    Attributes:
        x: inputs, float32 ``(n, d)``; images are flattened row by row.
        y: int64 class labels ``(n,)`` in ``0..n_classes-1``, or float32 regression targets
            ``(n,)`` or ``(n, k)``.
        name: where it came from (the bundled name or the file name).
        n_classes: the number of classes for integer labels, else ``None``.
        classes: the class labels as they appear in the data, in the order of their indices
            (``classes[y[i]]`` is row ``i``'s label), or ``None`` for regression.
        features: the model inputs' names (from a CSV's header; ``island=Dream`` for a
            one-hot level), or ``None`` if the file has none.
        table: for a CSV file, the fitted :class:`~fungrad.data.schema.TableSchema` (columns
            used, encodings, task, classes), which prediction applies to new files.
        notes: one line per decision the loader made (an index column dropped, a column
            one-hot encoded, the task chosen), for the user to read.
    """

    x: np.ndarray
    y: np.ndarray
    name: str
    n_classes: int | None
    classes: list | None = None
    features: list[str] | None = None
    table: Any = None
    notes: tuple[str, ...] = ()


class DataFileNotFoundError(FileNotFoundError, ValueError):
    """A data file does not exist. Its message starts with the path.

    It is both a ``FileNotFoundError`` and a ``ValueError``, so either ``except`` catches it.
    """


def _features(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected numeric inputs, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{where}: expected a non-empty array of samples, got shape {x.shape}")
    x = x.reshape(x.shape[0], -1)
    if x.shape[1] == 0:
        raise ValueError(f"{where}: expected at least one feature per sample, got shape {x.shape}")
    x = x.astype(np.float32)
    check_finite(where, x, what="input values (beyond float32 included)")
    return x


def _targets(y: np.ndarray, where: str) -> tuple[np.ndarray, int | None, list | None]:
    """Integer or string labels become class indices; floats stay regression targets.

    The classes are the distinct labels that occur, sorted (numbers by value, names as
    text), and ``y`` holds each row's index among them: a label value never sizes an array
    by itself (labels ``{0, 2**31 - 1}`` make two classes), and ``classes`` maps indices back.
    """
    if y.dtype.kind in "biuUS":
        if y.ndim != 1:
            raise ValueError(f"{where}: expected class labels of shape (n,), got shape {y.shape}")
        classes, y = np.unique(y, return_inverse=True)
        return y.reshape(-1).astype(np.int64), len(classes), classes.tolist()
    if y.dtype.kind == "f":
        if y.ndim not in (1, 2):
            raise ValueError(
                f"{where}: expected regression targets of shape (n,) or (n, k), got {y.shape}"
            )
        y = y.astype(np.float32)
        check_finite(where, y, what="targets")
        return y, None, None
    raise TypeError(
        f"{where}: expected integer class labels, class names or float targets, got dtype {y.dtype}"
    )


def _dataset(
    x: np.ndarray, y: np.ndarray, name: str, where: str, features: list[str] | None = None
) -> Dataset:
    x = _features(x, where)
    y, n_classes, classes = _targets(y, where)
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{where}: inputs have {x.shape[0]} rows but labels have {y.shape[0]}; "
            "expected one label per row"
        )
    return Dataset(x, y, name, n_classes, classes, features)

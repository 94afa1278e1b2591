"""Seeded train / validation / test splits, and each host's share of the rows."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np


class Split(NamedTuple):
    """Train, validation and test parts of one dataset (NumPy arrays, rows in random order)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}: expected a fraction in [0, 1), got {type(value).__name__}")
    if not 0 <= value < 1:
        raise ValueError(f"{name}: expected a fraction in [0, 1), got {value}")
    return float(value)


def _stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order in which every prefix holds each class in proportion (within one).

    The ``r``-th of the ``n_c`` samples of class ``c`` gets the position ``(r + 1/2) / n_c``
    in ``[0, 1)``; sorting all samples by position spreads each class evenly over the order.
    """
    shuffled = rng.permutation(labels.shape[0])
    by_class = np.argsort(labels[shuffled], kind="stable")
    _, starts, counts = np.unique(labels[shuffled][by_class], return_index=True, return_counts=True)
    rank = np.arange(labels.shape[0]) - np.repeat(starts, counts)
    position = (rank + 0.5) / np.repeat(counts, counts)
    tiebreak = rng.permutation(labels.shape[0])
    return shuffled[by_class[np.lexsort((tiebreak, position))]]


def split(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    validation: float = 0.1,
    test: float = 0.2,
    stratify: bool = True,
) -> Split:
    """Cut ``(x, y)`` into seeded random train, validation and test parts.

    The test part gets ``ceil(test * n)`` rows, the validation part ``ceil(validation * n)``,
    the training part the rest. With ``stratify`` and integer labels, each part holds every
    class in the proportion of the whole (to within one sample per class); float targets are
    never stratified. The same seed gives the same split.

    Args:
        x: inputs ``(n, ...)``.
        y: labels or targets ``(n, ...)``.
        seed: the seed of the shuffle.
        validation: the fraction of rows for validation, in ``[0, 1)``; ``0`` gives empty
                ``x_val``, ``y_val`` (shape ``(0, d)``).
        test: the fraction of rows for testing, in ``[0, 1)``.
        stratify: keep the class proportions in every part (integer labels only).

    Returns:
        A :class:`Split`.

    Raises:
        ValueError, TypeError: for mismatched lengths, fractions outside ``[0, 1)`` or summing
                to 1 or more, or too few rows to leave a training part.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x: expected a non-empty array of samples, got shape {x.shape}")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y: expected {x.shape[0]} rows to match x, got shape {y.shape}")
    validation, test = _fraction("validation", validation), _fraction("test", test)
    if validation + test >= 1:
        raise ValueError(
            f"validation, test: expected fractions summing to less than 1, "
            f"got {validation} + {test} = {validation + test}"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected an integer, got {type(seed).__name__}")
    n = x.shape[0]
    # Rounded first so that 0.1 * 30 = 3.0000000000000004 gives 3 rows, not 4.
    n_test, n_val = (math.ceil(round(f * n, 9)) for f in (test, validation))
    if n - n_test - n_val < 1:
        raise ValueError(
            f"x: {n} samples leave no training rows after test={test} ({n_test} rows) "
            f"and validation={validation} ({n_val} rows)"
        )
    rng = np.random.default_rng(seed)
    if stratify and y.ndim == 1 and y.dtype.kind in "biu":
        order = _stratified_order(y, rng)
    else:
        order = rng.permutation(n)
    test_rows = rng.permutation(order[:n_test])
    val_rows = rng.permutation(order[n_test : n_test + n_val])
    train_rows = rng.permutation(order[n_test + n_val :])
    return Split(x[train_rows], y[train_rows], x[val_rows], y[val_rows], x[test_rows], y[test_rows])


def shard_for_process(
    x: np.ndarray,
    y: np.ndarray,
    *,
    process_index: int | None = None,
    process_count: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The contiguous block of rows this host feeds in multi-host data-parallel training.

    Every host loads (and splits, with the same seed) the same data, then keeps shard
    ``process_index`` of ``process_count`` equal shards: rows ``[i * m, (i + 1) * m)`` with
    ``m = n // process_count``. The last ``n % process_count`` rows are dropped, so every host
    has the same shapes (which SPMD programs need); shuffle before sharding so that the
    dropped rows are random ones.

    Args:
        x: inputs ``(n, ...)``, the same on every host.
        y: labels or targets ``(n, ...)``.
        process_index: this host's index; default ``jax.process_index()``.
        process_count: the number of hosts; default ``jax.process_count()``.

    Returns:
        ``(x_shard, y_shard)``, each with ``n // process_count`` rows.

    Example:
        >>> x, y = np.arange(10)[:, None], np.arange(10)
        >>> shard_for_process(x, y, process_index=1, process_count=3)[1]
        array([3, 4, 5])
    """
    if process_count is None:
        process_count = jax.process_count()
    if process_index is None:
        process_index = jax.process_index()
    for name, value in (("process_count", process_count), ("process_index", process_index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if process_count < 1:
        raise ValueError(f"process_count: expected a positive integer, got {process_count}")
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index: expected an integer in [0, {process_count}), got {process_index}"
        )
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x, y: expected the same number of rows, got shapes {x.shape} and {y.shape}"
        )
    size = x.shape[0] // process_count
    if size == 0:
        raise ValueError(
            f"x: {x.shape[0]} rows cannot give each of {process_count} processes at least one"
        )
    rows = slice(process_index * size, (process_index + 1) * size)
    return x[rows], y[rows]

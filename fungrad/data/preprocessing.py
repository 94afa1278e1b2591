"""Preprocessing fitted on training data: standardisation, and one-hot targets."""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class Standardizer(NamedTuple):
    """Per-feature standardisation ``x -> (x - mean) / std`` with statistics from training data."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, x) -> np.ndarray:
        """Standardise ``x`` of shape ``(..., d)`` (NumPy in, float32 NumPy out; JAX arrays stay JAX)."""
        if not isinstance(x, jax.Array):
            x = np.asarray(x, dtype=np.float32)
        if x.ndim < 1 or x.shape[-1] != self.mean.shape[0]:
            raise ValueError(
                f"x: expected {self.mean.shape[0]} features (the training data's), "
                f"got shape {x.shape}"
            )
        return (x - self.mean) / self.std


def fit_standardizer(x_train: np.ndarray) -> Standardizer:
    """Learn the per-feature mean and standard deviation of the training inputs.

    Fit it on the training part only and apply it to every part, so that nothing about the
    validation or test rows leaks into training. A constant feature (digits has pixels that
    are always 0) keeps ``std = 1``: it maps to 0 instead of dividing by zero.

    Args:
        x_train: training inputs ``(n, d)``.

    Returns:
        A :class:`Standardizer` (float32 ``mean`` and ``std`` of shape ``(d,)``).

    Example:
        >>> s = fit_standardizer(np.array([[0.0, 5.0], [2.0, 5.0]]))
        >>> s(np.array([[1.0, 5.0]]))
        array([[0., 0.]], dtype=float32)
    """
    x = np.asarray(x_train)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x_train: expected a non-empty (n, d) array, got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"x_train: expected numeric inputs, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("x_train: inputs contain NaN or infinity")
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(np.all(x == x[0], axis=0), 1.0, std)
    return Standardizer(mean.astype(np.float32), std.astype(np.float32))


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Class labels ``(...)`` as float32 one-hot rows ``(..., n_classes)``.

    Example:
        >>> one_hot(np.array([0, 2]), 3)
        array([[1., 0., 0.],
               [0., 0., 1.]], dtype=float32)
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(f"n_classes: expected a positive integer, got {type(n_classes).__name__}")
    if n_classes < 1:
        raise ValueError(f"n_classes: expected a positive integer, got {n_classes}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels: expected integer class labels, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels: expected values in [0, {n_classes}), "
            f"got values in [{labels.min()}, {labels.max()}]"
        )
    return (labels[..., None] == np.arange(n_classes)).astype(np.float32)

"""Targets checked against a loss and a model's output before training: :func:`prepare_targets`.

A :class:`fungrad.losses.Loss` names the kind of target it takes (``loss.target``):

- ``"real"``: floats ``(batch, k)``, or ``(batch,)`` when ``k == 1``;
- ``"binary"``: the same shapes, each value in ``[0, 1]``;
- ``"classes"``: integer labels ``(batch,)`` in ``[0, k)``, or probability rows ``(batch, k)``
  with ``p_j >= 0`` and ``sum_j p_j = 1``.

Values are read only when the process can see them (not under ``jit``, not split across
hosts); a bad value is reported with its count, its first row and the row's values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from fungrad.losses import Loss

__all__ = ["prepare_targets"]


def _is_concrete(x) -> bool:
    """Whether this process can read ``x``'s values: not traced, not split across hosts."""
    return not isinstance(x, jax.core.Tracer) and getattr(x, "is_fully_addressable", True)


def _row(values: np.ndarray) -> str:
    return np.array2string(values, threshold=8, precision=6, separator=", ")


def _check_class_labels(y, loss: Loss, batch: int, k: int, argname: str):
    if y.shape != (batch,):
        raise ValueError(
            f"{argname}: integer class labels for loss {loss.name!r} must have shape "
            f"({batch},), got {y.shape}"
        )
    if _is_concrete(y) and y.size:
        # Reduce in NumPy: a jnp reduction of concrete labels closed over by a jitted
        # function would itself be traced, and int() of it would fail.
        labels = np.asarray(y)
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= k:
            raise ValueError(
                f"{argname}: class labels must lie in [0, {k}) for a model with {k} outputs, "
                f"got labels in [{low}, {high}]"
            )
    return y


def _check_binary(y: np.ndarray, loss: Loss, argname: str) -> None:
    """Binary targets lie in ``[0, 1]`` (NaN does not)."""
    outside = ~((y >= 0) & (y <= 1))
    if outside.any():
        row = int(np.argmax(outside.any(axis=1)))
        raise ValueError(
            f"{argname}: expected values in [0, 1] for loss {loss.name!r}, got "
            f"{int(outside.sum())} outside it, the first in row {row}: {_row(y[row])}"
        )


def _check_probabilities(y: np.ndarray, loss: Loss, argname: str) -> None:
    """Probability rows are non-negative and sum to 1 (to 1e-6 in float64, else 1e-3 or eps).

    Rounding each ``p_j`` to a dtype moves the row's sum by at most ``eps / 2``, so rows
    rounded to bfloat16 (``eps = 2^-7``) are allowed ``eps`` rather than float32's ``1e-3``.
    """
    tolerance = 1e-6 if y.dtype == np.float64 else max(1e-3, float(jnp.finfo(y.dtype).eps))
    sums = y.sum(axis=1, dtype=np.float64)
    bad = (y < 0).any(axis=1) | ~(np.abs(sums - 1) <= tolerance)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"{argname}: expected probability rows (non-negative, summing to 1 within "
            f"{tolerance:g}) or integer class labels for loss {loss.name!r}, got "
            f"{int(bad.sum())} bad rows, the first row {row}: {_row(y[row])} sums to "
            f"{sums[row]:.6g}"
        )


def prepare_targets(loss: Loss, y, y_hat_shape: tuple[int, ...], *, argname: str = "y"):
    """Check ``y`` against the loss's target kind and the model's output shape; batch it.

    ``y_hat_shape`` is ``(batch, k)``. By ``loss.target``:

    - ``"real"``: floats ``(batch, k)`` (or ``(batch,)`` when ``k == 1``);
    - ``"binary"``: the same shapes, values in ``[0, 1]``;
    - ``"classes"``: integer labels ``(batch,)`` in ``[0, k)``, or probability rows
      ``(batch, k)``: non-negative, each summing to 1 (within ``1e-6`` in float64, ``1e-3``
      otherwise, the dtype's ``eps`` in bfloat16).

    Values are checked when ``y`` is concrete (outside ``jit``); traced targets only have
    their shape checked. Integer or boolean targets other than class labels become floats.

    Raises:
        ValueError: on a shape that does not fit, or values the target kind does not take.

    Example:
        >>> import numpy as np
        >>> from fungrad.losses import get_loss
        >>> bce = get_loss("sigmoid_binary_cross_entropy")
        >>> prepare_targets(bce, np.array([0, 1, 1]), (3, 1)).shape
        (3, 1)
        >>> prepare_targets(bce, np.array([0.0, 2.0, 1.0]), (3, 1))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: y: expected values in [0, 1] ... got 1 outside it, the first in row 1: [2.]
    """
    y = jnp.asarray(y)
    batch, k = y_hat_shape
    classes = loss.target == "classes"
    if classes and jnp.issubdtype(y.dtype, jnp.integer):
        return _check_class_labels(y, loss, batch, k, argname)
    if y.shape == (batch,) and k == 1 and not classes:
        y = y[:, None]
    if y.shape != (batch, k):
        expected = f"({batch}, {k})"
        if classes:
            expected = f"integer labels ({batch},) or probabilities ({batch}, {k})"
        elif k == 1:
            expected += f" or ({batch},)"
        raise ValueError(
            f"{argname}: expected shape {expected} for loss {loss.name!r}, got {y.shape}"
        )
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.result_type(float))
    if _is_concrete(y) and y.size and loss.target != "real":
        check = _check_probabilities if classes else _check_binary
        check(np.asarray(y), loss, argname)
    return y

"""Shared argument validators: a positive integer, a finite number, a fraction, one of a few.

Every public entry point checks what a user can get wrong with these, so the same mistake
reads the same everywhere: ``NAME: expected ..., got ...``. Each validator returns the value
in plain Python form (``int``, ``float``), so NumPy and JAX scalars (``np.int64(3)``,
``jnp.asarray(0.5)``) are accepted wherever a Python number is, and what comes out hashes and
prints like the number it is.

A value of the wrong type raises :class:`ArgumentTypeError`, which is both a ``TypeError``
and a ``ValueError``: the right kind of error, and caught by code that catches either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

__all__ = [
    "ArgumentTypeError",
    "finite_number",
    "floating_leaves",
    "fraction",
    "non_negative_number",
    "one_of",
    "positive_int",
]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a ``TypeError`` that is also a ``ValueError``)."""


def _scalar_dtype(value: Any) -> np.dtype | None:
    """The dtype of a NumPy/JAX scalar or 0-d array, ``None`` for anything else."""
    dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
    if shape != () or isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        return None  # e.g. a PRNG key's dtype


def positive_int(name: str, value: Any) -> int:
    """``value`` as a Python ``int >= 1``.

    Accepts Python ints and NumPy/JAX integer scalars (0-d integer arrays too); refuses
    ``bool`` and floats, even integral ones such as ``2.0``.

    Raises:
        ArgumentTypeError: for anything that is not an integer.
        ValueError: for an integer below 1.

    Example:
        >>> import numpy as np
        >>> positive_int("epochs", np.int64(3))
        3
    """
    if isinstance(value, bool):
        integer = None
    elif isinstance(value, int):
        integer = int(value)
    else:
        dtype = _scalar_dtype(value)
        integer = int(value) if dtype is not None and dtype.kind in "iu" else None
    if integer is None:
        raise ArgumentTypeError(f"{name}: expected a positive integer, got {value!r}")
    if integer < 1:
        raise ValueError(f"{name}: expected a positive integer, got {integer}")
    return integer


def finite_number(name: str, value: Any, minimum: float | None = None) -> float:
    """``value`` as a finite Python ``float``, at least ``minimum`` when one is given.

    Accepts Python ints and floats and NumPy/JAX real scalars (0-d arrays too); refuses
    ``bool``, strings, complex numbers, NaN and infinities.

    Raises:
        ArgumentTypeError: for anything that is not a real number.
        ValueError: for NaN, an infinity, or a number below ``minimum``.

    Example:
        >>> finite_number("tol", 1e-3, minimum=0)
        0.001
    """
    if isinstance(value, bool):
        number = None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        dtype = _scalar_dtype(value)
        number = float(value) if dtype is not None and dtype.kind in "iuf" else None
    if number is None:
        raise ArgumentTypeError(f"{name}: expected a finite number, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name}: expected a number >= {minimum:g}, got {number:g}")
    return number


def non_negative_number(name: str, value: Any) -> float:
    """``value`` as a finite ``float >= 0`` (see :func:`finite_number`).

    Example:
        >>> non_negative_number("min_delta", 0)
        0.0
    """
    return finite_number(name, value, minimum=0)


def fraction(name: str, value: Any, *, include_one: bool = True) -> float:
    """``value`` as a ``float`` in ``[0, 1]``, or ``[0, 1)`` with ``include_one=False``.

    Raises:
        ArgumentTypeError: for anything that is not a real number.
        ValueError: for a number outside the interval, or NaN.

    Example:
        >>> fraction("validation", 0.25)
        0.25
    """
    interval = "[0, 1]" if include_one else "[0, 1)"
    try:
        number = finite_number(name, value)
    except ArgumentTypeError:
        raise ArgumentTypeError(f"{name}: expected a number in {interval}, got {value!r}") from None
    except ValueError:
        number = math.nan
    if not (0 <= number <= 1) or (number == 1 and not include_one):
        raise ValueError(f"{name}: expected a number in {interval}, got {value!r}")
    return number


def _same(value: Any, choice: Any) -> bool:
    if isinstance(value, bool) != isinstance(choice, bool):
        return False  # True == 1 in Python, but True is not the choice 1
    try:
        return bool(value == choice)
    except (TypeError, ValueError):  # an array compares elementwise
        return False


def one_of(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` itself, if it is one of ``choices``.

    Raises:
        ValueError: otherwise, listing the choices.

    Example:
        >>> one_of("mode", "min", ("min", "max"))
        'min'
    """
    for choice in choices:
        if _same(value, choice):
            return choice
    listed = ", ".join(repr(choice) for choice in choices)
    raise ValueError(f"{name}: expected one of {listed}, got {value!r}")


def check_finite(name: str, values, *, what: str = "values") -> None:
    """Raise ``ValueError`` if ``values`` holds NaN or infinity: how many, and the first row.

    Example:
        >>> check_finite("x", [[1.0, 2.0], [float("nan"), 3.0]])
        Traceback (most recent call last):
        ...
        ValueError: x: 1 values are NaN or infinite (in 1 row); the first in row 1
    """
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    by_row = bad.reshape(bad.shape[0], -1).any(axis=1) if array.ndim else bad.reshape(1)
    rows = np.flatnonzero(by_row)
    plural = "row" if rows.size == 1 else "rows"
    raise ValueError(
        f"{name}: {int(bad.sum())} {what} are NaN or infinite (in {rows.size} {plural}); "
        f"the first in row {int(rows[0])}"
    )


def floating_leaves(name: str, tree: Any) -> None:
    """Raise ``TypeError`` unless every array leaf of ``tree`` has a floating dtype.

    Parameters are trained by gradients, so they must be real floating point: ``float64``,
    ``float32``, ``bfloat16`` or ``float16``. Integer and bool leaves are refused by name,
    with the first offending leaf's path and dtype. Only dtypes are read, so this is free
    under ``jit``.

    Raises:
        TypeError: for the first leaf whose dtype is not floating.

    Example:
        >>> import numpy as np
        >>> floating_leaves("params", [{"w": np.ones((2, 2), np.int32)}])
        Traceback (most recent call last):
        ...
        TypeError: params[0]['w']: expected a floating dtype (float32, float64, bfloat16 or float16), got int32
    """
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        dtype = getattr(leaf, "dtype", None)
        if dtype is None and isinstance(leaf, (bool, int, float, complex)):
            dtype = np.asarray(leaf).dtype
        if dtype is None:
            continue  # not an array: the model's own business
        if not jax.dtypes.issubdtype(dtype, jax.numpy.floating):  # bfloat16 is not NumPy's
            raise TypeError(
                f"{name}{jax.tree_util.keystr(path)}: expected a floating dtype (float32, "
                f"float64, bfloat16 or float16), got {np.dtype(dtype).name}"
            )

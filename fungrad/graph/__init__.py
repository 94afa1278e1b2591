"""The general engine: hand-written reverse mode on the computational graph of any JAX function.

``vjp``, ``grad`` and ``value_and_grad`` have the calling conventions of JAX's functions of
the same names, but compute with fungrad's own VJP rules: ``f`` is recorded as a jaxpr, run
forward keeping its values, and walked back equation by equation (see ``interpreter``).

The lesson's graphs:
    >>> import jax.numpy as jnp
    >>> from fungrad import graph
    >>> y, (dy_da, dy_db) = graph.value_and_grad(lambda a, b: a * (a + b), argnums=(0, 1))(3.0, 4.0)
    >>> float(y), float(dy_da), float(dy_db)
    (21.0, 10.0, 3.0)
    >>> x = 2.0
    >>> bool(jnp.isclose(graph.grad(lambda x: jnp.sin(x**3))(x), 3 * x**2 * jnp.cos(x**3)))
    True
    >>> bool(jnp.isclose(graph.grad(lambda x: x**2 * jnp.sin(x))(x),
    ...                  2 * x * jnp.sin(x) + x**2 * jnp.cos(x)))
    True
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fungrad.graph import (  # noqa: F401  (importing a rules module registers its rules)
    rules_control,
    rules_elementwise,
    rules_indexing,
    rules_linear,
    rules_reduce,
    rules_structure,
)
from fungrad.graph.draw import draw, to_dot
from fungrad.graph.interpreter import Recording, backward, forward, record, trace_function
from fungrad.graph.registry import UnsupportedPrimitiveError, defvjp

__all__ = [
    "Recording",
    "UnsupportedPrimitiveError",
    "defvjp",
    "draw",
    "grad",
    "record",
    "to_dot",
    "value_and_grad",
    "vjp",
]


def _zero_cotangent(x: Any) -> Any:
    """The cotangent of an input nothing flowed back to: zeros (``float0`` for integers)."""
    if jnp.issubdtype(jnp.result_type(x), jnp.inexact):
        return jnp.zeros(jnp.shape(x), jnp.result_type(x))
    return np.zeros(jnp.shape(x), dtype=jax.dtypes.float0)


def _check_cotangents(ct: Any, out_tree: Any, outs: Sequence) -> list:
    flat, tree = jax.tree_util.tree_flatten(ct)
    if tree != out_tree:
        raise TypeError(
            f"vjp_fn: the cotangent must have the structure of the output, {out_tree}; got {tree}"
        )
    checked = []
    for c, out in zip(flat, outs, strict=True):
        if jnp.shape(c) != jnp.shape(out):
            raise ValueError(
                f"vjp_fn: a cotangent must have its output's shape {jnp.shape(out)}, "
                f"got shape {jnp.shape(c)}"
            )
        c = jnp.asarray(c)
        checked.append(c if c.dtype == jnp.result_type(out) else c.astype(jnp.result_type(out)))
    return checked


def vjp(f: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """The value of ``f(*primals)`` and a function pulling output cotangents back to inputs.

    Args:
        f: a function of pytrees of arrays, returning a pytree of arrays (with
            ``has_aux``, a pair ``(output, aux)``).
        *primals: the point to differentiate at.
        has_aux: whether ``f`` returns auxiliary data that is not differentiated.

    Returns:
        ``(out, vjp_fn)`` or, with ``has_aux``, ``(out, vjp_fn, aux)``. ``vjp_fn(ct)``
        takes a cotangent with ``out``'s structure and returns a tuple with one cotangent
        per primal, ``J^T ct`` (integer inputs get ``float0`` zeros, like ``jax.vjp``).

    Example:
        >>> out, vjp_fn = vjp(lambda a, b: a * (a + b), 3.0, 4.0)
        >>> [float(c) for c in vjp_fn(1.0)]
        [10.0, 3.0]
    """
    traced = trace_function(f, primals, has_aux)
    jaxpr = traced.jaxpr.jaxpr
    trace = forward(jaxpr, traced.jaxpr.consts, traced.flat_args)
    outs, aux = trace.outs[: traced.num_out], trace.outs[traced.num_out :]

    def vjp_fn(ct: Any) -> tuple:
        seeds = _check_cotangents(ct, traced.out_tree, outs)
        in_cts, _ = backward(jaxpr, trace, seeds + [None] * len(aux))
        in_cts = [
            _zero_cotangent(x) if c is None else c
            for c, x in zip(in_cts, traced.flat_args, strict=True)
        ]
        return jax.tree_util.tree_unflatten(traced.in_tree, in_cts)

    out = jax.tree_util.tree_unflatten(traced.out_tree, outs)
    if has_aux:
        return out, vjp_fn, jax.tree_util.tree_unflatten(traced.aux_tree, aux)
    return out, vjp_fn


def _check_argnums(argnums: Any, num_args: int) -> tuple[int, ...]:
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    for i in nums:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"argnums must be an int or a tuple of ints, got {argnums!r}")
        if not -num_args <= i < num_args:
            raise ValueError(
                f"differentiating with respect to argnums={argnums!r} requires at least "
                f"{(i if i >= 0 else -i - 1) + 1} positional arguments, but got {num_args}"
            )
    return tuple(int(i) % num_args for i in nums)


def _check_scalar_float_output(out: Any) -> None:
    if not hasattr(out, "shape") and not isinstance(out, (int, float)):
        raise TypeError(f"Gradient only defined for scalar-output functions. Output was {out!r}.")
    if jnp.shape(out) != ():
        raise TypeError(
            "Gradient only defined for scalar-output functions. "
            f"Output had shape: {jnp.shape(out)}."
        )
    if not jnp.issubdtype(jnp.result_type(out), jnp.floating):
        raise TypeError(
            "grad requires real-valued outputs (output dtype that is a sub-dtype of "
            f"np.floating), but got {jnp.result_type(out)}."
        )


def _check_float_inputs(dyn_args: tuple) -> None:
    for leaf in jax.tree_util.tree_leaves(dyn_args):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            raise TypeError(
                "grad requires real-valued inputs (input dtype that is a sub-dtype of "
                f"np.inexact), but got {jnp.result_type(leaf)}. Differentiate with respect "
                "to floating-point arguments only (see argnums)."
            )


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """A function returning ``f``'s value and its gradient with respect to ``argnums``.

    Args:
        f: a function returning a scalar float (with ``has_aux``, ``(scalar, aux)``).
        argnums: which positional argument(s) to differentiate: an int, or a tuple of ints
            (then the gradient is a tuple).
        has_aux: whether ``f`` returns auxiliary data.

    Returns:
        ``g(*args, **kwargs) -> (value, gradient)``, or ``((value, aux), gradient)`` with
        ``has_aux``; the gradient has the structure of the differentiated argument(s).

    Raises:
        TypeError: for a non-scalar or non-float output, or a non-float argument.

    Example:
        >>> value, slope = value_and_grad(lambda x: x**2 * jnp.sin(x))(1.0)
        >>> round(float(value), 6), round(float(slope), 6)  # sin 1, 2 sin 1 + cos 1
        (0.841471, 2.223244)
    """
    if isinstance(argnums, list):
        argnums = tuple(argnums)

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple:
        nums = _check_argnums(argnums, len(args))
        dyn_args = tuple(args[i] for i in nums)
        _check_float_inputs(dyn_args)

        def f_of_dyn(*dyn: Any) -> Any:
            full = list(args)
            for i, x in zip(nums, dyn, strict=True):
                full[i] = x
            return f(*full, **kwargs)

        out, vjp_fn, *aux = vjp(f_of_dyn, *dyn_args, has_aux=has_aux)
        _check_scalar_float_output(out)
        grads = vjp_fn(jnp.ones_like(out))
        grads = grads if isinstance(argnums, tuple) else grads[0]
        return ((out, aux[0]) if has_aux else out), grads

    return value_and_grad_f


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """A function returning the gradient of scalar ``f`` with respect to ``argnums``.

    Args:
        f: a function returning a scalar float (with ``has_aux``, ``(scalar, aux)``).
        argnums: an int, or a tuple of ints (then the gradient is a tuple).
        has_aux: whether ``f`` returns auxiliary data; then ``(gradient, aux)`` is returned.

    Returns:
        ``g(*args, **kwargs) -> gradient`` (or ``(gradient, aux)``).

    Raises:
        TypeError: for a non-scalar or non-float output, or a non-float argument.

    Example:
        >>> float(grad(lambda a, b: a * (a + b), argnums=1)(3.0, 4.0))
        3.0
    """
    value_and_grad_f = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        value, grads = value_and_grad_f(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return grad_f

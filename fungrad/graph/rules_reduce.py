"""Hand-written VJP rules for reductions, cumulative operations and pooling windows.

A reduction's cotangent is ``g`` spread back over the reduced axes: to every element for a
sum, to the chosen elements for a maximum or minimum, and times "the product of the others"
for a product. The cumulative operations spread it over every later output (a reversed
cumulative sum), and pooling spreads it over each window (``reduce_window_sum``) or to the
element each window chose (``reduce_window_max``/``min``).

Ties follow JAX: ``reduce_max``/``reduce_min`` split the cotangent evenly among the tied
elements, and a pooling window gives it all to its first maximal element in row-major
window order. ``cummax``/``cummin`` give each output's cotangent to the first position that
reached the running extreme (JAX divides ties in an order set by its scan's tree).

Every operation these rules emit has a rule, so backward passes can be differentiated again.

Example:
    >>> import jax.numpy as jnp
    >>> (d,) = _reduce_chooser_vjp(jnp.array(6.0), jnp.array(2.0), jnp.array([2.0, 1.0, 2.0]),
    ...                            axes=(0,))
    >>> d.tolist()
    [3.0, 0.0, 3.0]
"""

import functools
import itertools

import jax.numpy as jnp
import numpy as np
from jax import lax

from fungrad.graph.registry import defvjp


def _no_gradient(g, ans, *args, **params):
    return (None,) * len(args)


def _expand(reduced, shape, axes):
    """``reduced`` (``shape`` without ``axes``) broadcast back to ``shape``."""
    kept = tuple(axis for axis in range(len(shape)) if axis not in set(axes))
    return lax.broadcast_in_dim(reduced, shape, kept)


def _pad_axis(x, axis, low, high, fill):
    """``x`` with ``low``/``high`` elements of ``fill`` added at the ends of ``axis``."""
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (low, high, 0)
    return lax.pad(x, jnp.asarray(fill, x.dtype), config)


def _shift(x, axis, fill, toward_end):
    """``x`` moved one step along ``axis``, the vacated end filled with ``fill``.

    ``toward_end``: ``y[j] = x[j - 1]`` (``y[0] = fill``); otherwise ``y[j] = x[j + 1]``.
    """
    size = x.shape[axis]
    if toward_end:
        return _pad_axis(lax.slice_in_dim(x, 0, size - 1, axis=axis), axis, 1, 0, fill)
    return _pad_axis(lax.slice_in_dim(x, 1, size, axis=axis), axis, 0, 1, fill)


# --- Reductions ----------------------------------------------------------------------------


def _reduce_sum_vjp(g, ans, x, *, axes, **params):
    """``sum``: every element gets the cotangent of its sum."""
    return (_expand(g, x.shape, axes),)


def _reduce_chooser_vjp(g, ans, x, *, axes, **params):
    """``max``/``min``: the chosen elements share the cotangent evenly, ``g / ties``."""
    chosen = x == _expand(ans, x.shape, axes)
    ties = jnp.sum(chosen, axis=tuple(axes), dtype=g.dtype)
    share = _expand(g / ties, x.shape, axes)
    return (jnp.where(chosen, share, jnp.zeros_like(share)),)


def _exclusive_cumprod(x, axis, reverse):
    """The product of the elements strictly before (after, if ``reverse``) each element."""
    return _shift(lax.cumprod(x, axis, reverse=reverse), axis, 1, toward_end=not reverse)


def _reduce_prod_vjp(g, ans, x, *, axes, **params):
    """``prod``: ``d x_j = g * prod_{k != j} x_k``, as products before times products after.

    No division, so zeros in ``x`` are handled exactly.
    """
    kept = [axis for axis in range(x.ndim) if axis not in set(axes)]
    order = kept + list(axes)
    moved = lax.transpose(x, tuple(order))
    flat = moved.reshape(*moved.shape[: len(kept)], -1)
    last = flat.ndim - 1
    others = _exclusive_cumprod(flat, last, False) * _exclusive_cumprod(flat, last, True)
    others = lax.transpose(others.reshape(moved.shape), tuple(int(a) for a in np.argsort(order)))
    return (others * _expand(g, x.shape, axes),)


def _top_k_vjp(g, ans, x, *, axis, **params):
    """``top_k``: each of the ``k`` values' cotangents goes back to where it was taken."""
    g_values, _ = g
    _, indices = ans
    zeros = jnp.zeros(x.shape, g_values.dtype)
    return (jnp.put_along_axis(zeros, indices, g_values, axis=axis, inplace=False),)


defvjp(lax.reduce_sum_p, _reduce_sum_vjp)
defvjp(lax.reduce_max_p, _reduce_chooser_vjp)
defvjp(lax.reduce_min_p, _reduce_chooser_vjp)
defvjp(lax.reduce_prod_p, _reduce_prod_vjp)
defvjp(lax.top_k_p, _top_k_vjp)
for _primitive in (lax.argmax_p, lax.argmin_p, lax.reduce_and_p, lax.reduce_or_p, lax.reduce_xor_p):
    defvjp(_primitive, _no_gradient)


# --- Cumulative operations -----------------------------------------------------------------


def _cumsum_vjp(g, ans, x, *, axis, reverse, **params):
    """``cumsum``: each element feeds every later sum, so ``d x`` is the reversed cumsum of ``g``."""
    return (lax.cumsum(g, axis, reverse=not reverse),)


def _compose_affine(earlier, later):
    """Two steps ``r -> b + a * r`` of a linear recurrence, ``earlier`` applied first."""
    a_earlier, b_earlier = earlier
    a_later, b_later = later
    return a_later * a_earlier, b_later + a_later * b_earlier


def _cumprod_vjp(g, ans, x, *, axis, reverse, **params):
    """``cumprod``: ``d x_j = sum_{i >= j} g_i prod_{k <= i, k != j} x_k``, without division.

    That is ``(prod_{k < j} x_k) * r_j`` with ``r_j = g_j + x_{j+1} r_{j+1}``, a linear
    recurrence solved by an associative scan (mirrored when ``reverse``).
    """
    before = _shift(ans, axis, 1, toward_end=not reverse)
    steps = _shift(x, axis, 0, toward_end=reverse)
    _, r = lax.associative_scan(_compose_affine, (steps, g), reverse=not reverse, axis=axis)
    return (before * r,)


def _running_extreme_vjp(g, ans, x, *, axis, reverse, **params):
    """``cummax``/``cummin``: each output's cotangent goes to where its extreme was reached.

    Positions where the running extreme changes ("records") collect the cotangents of the
    outputs up to the next record: a difference of suffix sums of ``g``.
    """
    if reverse:
        (d_x,) = _running_extreme_vjp(
            lax.rev(g, (axis,)), lax.rev(ans, (axis,)), None, axis=axis, reverse=False
        )
        return (lax.rev(d_x, (axis,)),)
    size = ans.shape[axis]
    later, earlier = (
        lax.slice_in_dim(ans, *bounds, axis=axis) for bounds in ((1, size), (0, size - 1))
    )
    record = _pad_axis(later != earlier, axis, 1, 0, True)
    positions = lax.broadcasted_iota(jnp.int32, ans.shape, axis)
    record_positions = jnp.where(record, positions, size)
    next_record = lax.cummin(
        _shift(record_positions, axis, size, toward_end=False), axis, reverse=True
    )
    suffix = lax.cumsum(g, axis, reverse=True)
    suffix_at_next = jnp.take_along_axis(
        _pad_axis(suffix, axis, 0, 1, 0), next_record, axis=axis, mode="clip"
    )
    return (jnp.where(record, suffix - suffix_at_next, jnp.zeros_like(g)),)


defvjp(lax.cumsum_p, _cumsum_vjp)
defvjp(lax.cumprod_p, _cumprod_vjp)
defvjp(lax.cummax_p, _running_extreme_vjp)
defvjp(lax.cummin_p, _running_extreme_vjp)


# --- Pooling windows -----------------------------------------------------------------------
#
# Along one axis of size n, reduce_window pads the operand by (lo, hi) after dilating it by
# bd (base_dilation) into x_p, then output y reduces x_p[y * s + t * wd] over t < k (window
# k, strides s, window dilation wd), for m outputs. Window offset t thus reads the strided
# slice of x_p starting at t * wd; putting a cotangent back where that slice came from is a
# pad with interior s - 1, the transpose of the strided slice.


def _window_slices(out_shape, window_dimensions, window_strides, window_dilation):
    """Per window offset, in row-major order, the ``(start, limit)`` of its strided slice."""
    slices = []
    for offset in itertools.product(*(range(k) for k in window_dimensions)):
        start = tuple(t * wd for t, wd in zip(offset, window_dilation, strict=True))
        limit = tuple(
            first + (m - 1) * s + 1
            for first, m, s in zip(start, out_shape, window_strides, strict=True)
        )
        slices.append((start, limit))
    return slices


def _choose_in_windows(x, out_shape, params, select_max, extreme=None):
    """The padded ``x``, the window slices, and per output the offset its window chose.

    A window chooses its first element (in row-major window order) equal to its maximum
    (minimum unless ``select_max``); ``extreme``, the window extremes, is computed from the
    slices unless given.
    """
    fill = -jnp.inf if select_max else jnp.inf
    config = [
        (lo, hi, bd - 1)
        for (lo, hi), bd in zip(params["padding"], params["base_dilation"], strict=True)
    ]
    padded = lax.pad(x, jnp.asarray(fill, x.dtype), config)
    slices = _window_slices(
        out_shape, params["window_dimensions"], params["window_strides"], params["window_dilation"]
    )
    views = [lax.slice(padded, start, limit, params["window_strides"]) for start, limit in slices]
    if extreme is None:
        extreme = functools.reduce(lax.max if select_max else lax.min, views)
    choice = jnp.full(out_shape, len(slices), jnp.int32)
    for index in reversed(range(len(views))):
        choice = jnp.where(views[index] == extreme, index, choice)
    return padded, slices, choice


def _scatter_to_choice(g, x, padded, slices, choice, params):
    """``g`` (output-shaped) added back at the elements the windows chose: ``x``-shaped."""
    total = jnp.zeros(padded.shape, g.dtype)
    for index, (start, limit) in enumerate(slices):
        chosen = jnp.where(choice == index, g, jnp.zeros_like(g))
        config = [
            (first, size - last, s - 1)
            for first, last, size, s in zip(
                start, limit, padded.shape, params["window_strides"], strict=True
            )
        ]
        total = total + lax.pad(chosen, jnp.zeros((), g.dtype), config)
    starts = [lo for lo, _ in params["padding"]]
    limits = [
        lo + (n - 1) * bd + 1
        for lo, n, bd in zip(starts, x.shape, params["base_dilation"], strict=True)
    ]
    return lax.slice(total, starts, limits, params["base_dilation"])


def _gather_from_choice(t, padded, slices, choice, params):
    """``t`` (operand-shaped) read at the elements the windows chose: output-shaped."""
    config = [
        (lo, hi, bd - 1)
        for (lo, hi), bd in zip(params["padding"], params["base_dilation"], strict=True)
    ]
    t_padded = lax.pad(t, jnp.zeros((), t.dtype), config)
    out = jnp.zeros(choice.shape, t.dtype)
    for index, (start, limit) in enumerate(slices):
        view = lax.slice(t_padded, start, limit, params["window_strides"])
        out = out + jnp.where(choice == index, view, jnp.zeros_like(view))
    return out


def _reduce_window_sum_vjp(g, ans, x, **params):
    """``reduce_window_sum`` (average pooling): each element gets the sum of its windows' ``g``.

    That is ``g`` dilated by the strides, padded, and summed over flipped windows (all ones,
    so the flip is invisible), read at the operand's positions: stride ``bd``.
    """
    config = [
        ((k - 1) * wd - lo, (n - 1) * bd + lo - (m - 1) * s, s - 1)
        for n, k, m, s, (lo, _), bd, wd in zip(
            x.shape, params["window_dimensions"], g.shape, params["window_strides"],
            params["padding"], params["base_dilation"], params["window_dilation"], strict=True,
        )
    ]  # fmt: skip
    spread = lax.pad(g, jnp.zeros((), g.dtype), config)
    d_x = lax.reduce_window_sum_p.bind(
        spread,
        window_dimensions=tuple(params["window_dimensions"]),
        window_strides=tuple(params["base_dilation"]),
        padding=((0, 0),) * x.ndim,
        base_dilation=(1,) * x.ndim,
        window_dilation=tuple(params["window_dilation"]),
    )
    return (d_x,)


def _reduce_window_chooser_vjp(select_max):
    def rule(g, ans, x, **params):
        if not jnp.issubdtype(x.dtype, jnp.inexact):
            return (None,)
        padded, slices, choice = _choose_in_windows(x, ans.shape, params, select_max, ans)
        return (_scatter_to_choice(g, x, padded, slices, choice, params),)

    rule.__doc__ = "``reduce_window_max``/``min`` (max pooling): ``g`` to each window's choice."
    return rule


def _full_window_params(params):
    """``select_and_scatter_add`` has no dilations: they are 1."""
    ones = (1,) * len(params["window_dimensions"])
    return {"base_dilation": ones, "window_dilation": ones, **params}


def _select_and_gather_add_vjp(g, ans, tangents, x, *, select_prim, **params):
    """``select_and_gather_add`` (JAX's max-pool JVP): ``g`` back to the chosen tangents."""
    padded, slices, choice = _choose_in_windows(x, ans.shape, params, select_prim is lax.ge_p)
    return _scatter_to_choice(g, x, padded, slices, choice, params), None


def _select_and_scatter_add_vjp(g, ans, source, x, *, select_prim, **params):
    """``select_and_scatter_add`` (JAX's max-pool VJP): ``source`` reads ``g`` at the choices."""
    params = _full_window_params(params)
    padded, slices, choice = _choose_in_windows(x, source.shape, params, select_prim is lax.ge_p)
    return _gather_from_choice(g, padded, slices, choice, params), None


defvjp(lax.reduce_window_sum_p, _reduce_window_sum_vjp)
defvjp(lax.reduce_window_max_p, _reduce_window_chooser_vjp(select_max=True))
defvjp(lax.reduce_window_min_p, _reduce_window_chooser_vjp(select_max=False))
defvjp(lax.select_and_gather_add_p, _select_and_gather_add_vjp)
defvjp(lax.select_and_scatter_add_p, _select_and_scatter_add_vjp)

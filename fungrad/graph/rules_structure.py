"""Hand-written VJP rules for array structure: shapes, slices and casts.

These primitives move values around without computing with them, so each rule moves the
cotangent back: the transpose of a copy is a sum over the copies (``broadcast_in_dim``),
the transpose of taking a part is putting it back into zeros (``slice`` by ``pad``,
``dynamic_slice`` by ``dynamic_update_slice``; ``gather`` by ``scatter-add`` in
:mod:`~fungrad.graph.rules_indexing`), and the
transpose of a rearrangement is the inverse rearrangement (``reshape``, ``transpose``,
``rev``, ``concatenate`` by slices). Every operation a rule emits has a rule here or in a
sibling module, so backward passes can be differentiated again.

``expand_dims`` is ``broadcast_in_dim`` in a jaxpr; ``select_n`` lives with the elementwise
rules.

Example:
    >>> import jax.numpy as jnp
    >>> (d,) = _slice_vjp(jnp.ones(2), None, jnp.zeros(5), start_indices=(1,),
    ...                   limit_indices=(5,), strides=(2,))
    >>> d.tolist()
    [0.0, 1.0, 0.0, 1.0, 0.0]
"""

import jax.numpy as jnp
import numpy as np
from jax import lax

from fungrad.graph.registry import defvjp


def _differentiable(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.inexact)


def _no_inputs_cotangent(*args) -> tuple:
    return (None,) * len(args)


# --- Copies and casts ----------------------------------------------------------------------


def _identity(g, ans, x, **params):
    return (g,)


def _identity_all(g, ans, *args, **params):
    """For multiple-result primitives that pass each input through (``device_put``)."""
    return tuple(gi if _differentiable(x) else None for gi, x in zip(g, args, strict=True))


def _no_gradient(g, ans, *args, **params):
    return _no_inputs_cotangent(*args)


def _convert_element_type_vjp(g, ans, x, *, new_dtype, **params):
    """A cast: the cotangent cast back; none across an integer or boolean type."""
    if not (_differentiable(x) and jnp.issubdtype(new_dtype, jnp.inexact)):
        return (None,)
    return (g.astype(x.dtype),)


defvjp(lax.copy_p, _identity)
defvjp(lax.sharding_constraint_p, _identity)
defvjp(lax.device_put_p, _identity_all)
defvjp(lax.convert_element_type_p, _convert_element_type_vjp)
defvjp(lax.stop_gradient_p, _no_gradient)
defvjp(lax.iota_p, _no_gradient)


# --- Rearrangements ------------------------------------------------------------------------


def _broadcast_in_dim_vjp(g, ans, x, *dynamic_shape, broadcast_dimensions, **params):
    """``broadcast_in_dim``: sum over the new axes and over the size-1 axes that grew."""
    kept = set(broadcast_dimensions)
    summed = [axis for axis in range(g.ndim) if axis not in kept]
    summed += [
        out_axis
        for in_axis, out_axis in enumerate(broadcast_dimensions)
        if x.shape[in_axis] == 1 and g.shape[out_axis] != 1
    ]
    total = jnp.sum(g, axis=tuple(sorted(summed))) if summed else g
    return (total.reshape(x.shape), *_no_inputs_cotangent(*dynamic_shape))


def _reshape_vjp(g, ans, x, *dynamic_shape, dimensions, **params):
    """``reshape``: the inverse reshape (and the inverse of its optional transposition)."""
    if dimensions is None:
        return (g.reshape(x.shape), *_no_inputs_cotangent(*dynamic_shape))
    transposed_shape = tuple(x.shape[axis] for axis in dimensions)
    back = lax.transpose(g.reshape(transposed_shape), tuple(np.argsort(dimensions)))
    return (back, *_no_inputs_cotangent(*dynamic_shape))


def _transpose_vjp(g, ans, x, *, permutation, **params):
    return (lax.transpose(g, tuple(int(a) for a in np.argsort(permutation))),)


def _squeeze_vjp(g, ans, x, *, dimensions, **params):
    return (g.reshape(x.shape),)


def _rev_vjp(g, ans, x, *, dimensions, **params):
    return (lax.rev(g, dimensions),)


defvjp(lax.broadcast_in_dim_p, _broadcast_in_dim_vjp)
defvjp(lax.reshape_p, _reshape_vjp)
defvjp(lax.transpose_p, _transpose_vjp)
defvjp(lax.squeeze_p, _squeeze_vjp)
defvjp(lax.rev_p, _rev_vjp)


# --- Joining, splitting and permuting --------------------------------------------------------


def _concatenate_vjp(g, ans, *operands, dimension, **params):
    """``concatenate``: each operand's cotangent is its slice of ``g``."""
    cotangents, start = [], 0
    for x in operands:
        size = x.shape[dimension]
        part = lax.slice_in_dim(g, start, start + size, axis=dimension)
        cotangents.append(part if _differentiable(x) else None)
        start += size
    return tuple(cotangents)


def _split_vjp(g, ans, x, *, axis, **params):
    """``split`` (``jnp.split``): the output cotangents joined again."""
    return (lax.concatenate([gi.astype(x.dtype) for gi in g], axis),)


def _unstack_vjp(g, ans, x, *, axis, **params):
    """``unstack`` (``jnp.unstack``): the output cotangents stacked again."""
    return (jnp.stack([gi.astype(x.dtype) for gi in g], axis=axis),)


def _stack_vjp(g, ans, *operands, axis, **params):
    """``stack`` (``jnp.stack``): each operand's cotangent is its slice of ``g`` along ``axis``."""
    parts = jnp.unstack(g, axis=axis)
    return tuple(
        part.astype(x.dtype) if _differentiable(x) else None
        for part, x in zip(parts, operands, strict=True)
    )


def _tile_vjp(g, ans, x, *, reps, **params):
    """``tile`` (``jnp.tile``): the sum over the copies, split off as axes of their own."""
    copies_and_sizes = [size for pair in zip(reps, x.shape, strict=True) for size in pair]
    copy_axes = tuple(range(0, 2 * x.ndim, 2))
    return (jnp.sum(g.reshape(copies_and_sizes), axis=copy_axes).astype(x.dtype),)


def _put_along_axis(values, indices, shape, axis):
    """Zeros of ``shape`` with ``values`` written at ``indices`` along ``axis``."""
    zeros = jnp.zeros(shape, values.dtype)
    return jnp.put_along_axis(zeros, indices, values, axis=axis, inplace=False)


def _sort_vjp(g, ans, *operands, dimension, is_stable, num_keys, **params):
    """``sort`` (``jnp.sort``, ``median``): each cotangent goes back to its element's place.

    Sorting the keys again with positions as a payload gives where each sorted element came
    from.
    """
    positions = lax.broadcasted_iota(jnp.int32, operands[0].shape, dimension)
    *_, came_from = lax.sort(
        (*operands[:num_keys], positions),
        dimension=dimension,
        is_stable=is_stable,
        num_keys=num_keys,
    )
    return tuple(
        _put_along_axis(gi, came_from, x.shape, dimension) if _differentiable(x) else None
        for gi, x in zip(g, operands, strict=True)
    )


defvjp(lax.concatenate_p, _concatenate_vjp)
defvjp(lax.split_p, _split_vjp)
defvjp(lax.stack_p, _stack_vjp)
defvjp(lax.unstack_p, _unstack_vjp)
defvjp(lax.tile_p, _tile_vjp)
defvjp(lax.sort_p, _sort_vjp)


# --- Padding and slicing -------------------------------------------------------------------


def _pad_vjp(g, ans, x, padding_value, *, padding_config, **params):
    """``pad``: undo the edge padding (cropping where it was negative), then the interior.

    The padding value's cotangent is the sum of ``g`` over the positions it filled.
    """
    uncropped = lax.pad(g, jnp.zeros((), g.dtype), [(-lo, -hi, 0) for lo, hi, _ in padding_config])
    d_x = lax.slice(
        uncropped,
        (0,) * g.ndim,
        uncropped.shape,
        tuple(interior + 1 for _, _, interior in padding_config),
    )
    d_padding_value = jnp.sum(g) - jnp.sum(d_x)
    return (
        d_x if _differentiable(x) else None,
        d_padding_value.astype(padding_value.dtype) if _differentiable(padding_value) else None,
    )


def _slice_vjp(g, ans, x, *, start_indices, limit_indices, strides, **params):
    """``slice``: ``g`` put back at the sliced positions of zeros, by padding.

    The element ``j`` of the slice came from ``start + j * stride``: pad ``g`` low by
    ``start``, between elements by ``stride - 1``, and high up to the input's size.
    """
    if 0 in g.shape:
        return (jnp.zeros_like(x),)
    strides = strides or (1,) * x.ndim
    config = [
        (start, size - start - (out - 1) * stride - 1, stride - 1)
        for start, size, out, stride in zip(start_indices, x.shape, g.shape, strides, strict=True)
    ]
    return (lax.pad(g, jnp.zeros((), g.dtype), config),)


def _dynamic_slice_vjp(g, ans, x, *start_indices, **params):
    """``dynamic_slice``: ``g`` written into zeros at the same (clamped) start."""
    d_x = lax.dynamic_update_slice(jnp.zeros_like(x), g, start_indices)
    return (d_x, *_no_inputs_cotangent(*start_indices))


def _dynamic_update_slice_vjp(g, ans, x, update, *start_indices, **params):
    """``dynamic_update_slice``: the update's window of ``g`` goes to the update, the rest to ``x``."""
    d_x = lax.dynamic_update_slice(g, jnp.zeros_like(update), start_indices)
    d_update = lax.dynamic_slice(g, start_indices, update.shape)
    return (
        d_x if _differentiable(x) else None,
        d_update if _differentiable(update) else None,
        *_no_inputs_cotangent(*start_indices),
    )


defvjp(lax.pad_p, _pad_vjp)
defvjp(lax.slice_p, _slice_vjp)
defvjp(lax.dynamic_slice_p, _dynamic_slice_vjp)
defvjp(lax.dynamic_update_slice_p, _dynamic_update_slice_vjp)

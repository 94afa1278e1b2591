"""Hand-written VJP rules for indexing: ``gather``, ``scatter-add`` and ``scatter``.

``x[idx]``, ``x[:, idx]``, ``jnp.take``, ``jnp.take_along_axis`` and ``x.at[i].add`` /
``x.at[i].set`` become these primitives. Taking a part and putting it back are each other's
transposes: the cotangent of a ``gather`` is a ``scatter-add`` of ``g`` into zeros (rows read
twice get both cotangents), and a ``scatter-add``'s updates get a ``gather`` of ``g``.
"""

import jax.numpy as jnp
import numpy as np
from jax import lax

from fungrad.graph.registry import defvjp
from fungrad.graph.rules_structure import _differentiable

# --- Indexing: gather and scatter ----------------------------------------------------------
#
# gather reads windows of the operand at the given starts; scatter writes windows of the
# updates there. With the same dimension numbers read in each other's terms
# (offset_dims <-> update_window_dims, collapsed_slice_dims <-> inserted_window_dims,
# start_index_map <-> scatter_dims_to_operand_dims), each is the other's transpose for the
# cotangent: gather's is a scatter-add of g, scatter-add's updates get a gather of g.


def _as_scatter_numbers(numbers: lax.GatherDimensionNumbers) -> lax.ScatterDimensionNumbers:
    return lax.ScatterDimensionNumbers(
        update_window_dims=numbers.offset_dims,
        inserted_window_dims=numbers.collapsed_slice_dims,
        scatter_dims_to_operand_dims=numbers.start_index_map,
        operand_batching_dims=numbers.operand_batching_dims,
        scatter_indices_batching_dims=numbers.start_indices_batching_dims,
    )


def _as_gather_numbers(numbers: lax.ScatterDimensionNumbers) -> lax.GatherDimensionNumbers:
    return lax.GatherDimensionNumbers(
        offset_dims=numbers.update_window_dims,
        collapsed_slice_dims=numbers.inserted_window_dims,
        start_index_map=numbers.scatter_dims_to_operand_dims,
        operand_batching_dims=numbers.operand_batching_dims,
        start_indices_batching_dims=numbers.scatter_indices_batching_dims,
    )


def _window_sizes(operand_shape, updates_shape, numbers: lax.ScatterDimensionNumbers):
    """The ``slice_sizes`` of the gather that reads each update's window back."""
    window = iter(updates_shape[axis] for axis in numbers.update_window_dims)
    one = set(numbers.inserted_window_dims) | set(numbers.operand_batching_dims)
    return tuple(1 if axis in one else next(window) for axis in range(len(operand_shape)))


def _read_windows(g, indices, updates, numbers, mode, indices_are_sorted, unique_indices):
    """The windows of ``g`` a scatter with ``numbers`` wrote ``updates`` to (zero if dropped)."""
    return lax.gather(
        g,
        indices,
        _as_gather_numbers(numbers),
        _window_sizes(g.shape, updates.shape, numbers),
        indices_are_sorted=indices_are_sorted,
        unique_indices=unique_indices,
        mode=mode,
        fill_value=0,
    )


def _gather_vjp(g, ans, x, indices, *, dimension_numbers, mode, **params):
    """``gather`` (``x[idx]``, ``jnp.take``, ``take_along_axis``): scatter-add ``g`` back.

    Positions read more than once collect the sum of their cotangents; windows a
    ``fill``-mode gather read out of bounds are dropped.
    """
    d_x = lax.scatter_add(
        jnp.zeros_like(x),
        indices,
        g,
        _as_scatter_numbers(dimension_numbers),
        indices_are_sorted=params["indices_are_sorted"],
        unique_indices=params["unique_indices"],
        mode=mode,
    )
    return d_x, None


def _scatter_add_vjp(g, ans, x, indices, updates, *, dimension_numbers, mode, **params):
    """``scatter-add`` (``x.at[idx].add(u)``): ``g`` for ``x``, its windows for ``u``."""
    d_updates = _read_windows(
        g,
        indices,
        updates,
        dimension_numbers,
        mode,
        params["indices_are_sorted"],
        params["unique_indices"],
    )
    return (
        g if _differentiable(x) else None,
        None,
        d_updates if _differentiable(updates) else None,
    )


def _scatter_vjp(g, ans, x, indices, updates, *, dimension_numbers, mode, **params):
    """``scatter`` (``x.at[idx].set(u)``): the overwritten part of ``g`` goes to ``u``.

    Where several updates write one position only the one that won gets the cotangent:
    scattering each update's number and reading it back tells which one that was.
    """
    numbers, sorted_, unique = dimension_numbers, params["indices_are_sorted"], False
    window_axes = set(numbers.update_window_dims)
    scatter_axes = [axis for axis in range(updates.ndim) if axis not in window_axes]
    scatter_shape = [updates.shape[axis] for axis in scatter_axes]
    ids = lax.broadcast_in_dim(
        1 + jnp.arange(int(np.prod(scatter_shape)), dtype=jnp.int32).reshape(scatter_shape),
        updates.shape,
        tuple(scatter_axes),
    )
    written = lax.scatter(
        jnp.zeros(x.shape, jnp.int32), indices, ids, numbers,
        indices_are_sorted=sorted_, unique_indices=unique, mode=mode,
    )  # fmt: skip
    won = _read_windows(written, indices, updates, numbers, mode, sorted_, unique) == ids
    d_updates = _read_windows(g, indices, updates, numbers, mode, sorted_, unique)
    return (
        jnp.where(written == 0, g, jnp.zeros_like(g)) if _differentiable(x) else None,
        None,
        jnp.where(won, d_updates, jnp.zeros_like(d_updates)) if _differentiable(updates) else None,
    )


defvjp(lax.gather_p, _gather_vjp)
defvjp(lax.scatter_add_p, _scatter_add_vjp)
defvjp(lax.scatter_p, _scatter_vjp)

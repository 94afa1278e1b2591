"""Hand-written VJP rules for linear algebra: ``dot_general`` and ``conv_general_dilated``.

Both primitives are bilinear, so each operand's cotangent is the same kind of operation
again, applied to the output cotangent ``g`` and the *other* operand:

* ``dot_general``: contract ``g`` with the other operand over the axes the other operand
  kept, batch over the shared batch axes, then transpose back to the operand's axis order.
* ``conv_general_dilated``: the input's cotangent is a convolution of ``g`` with the
  spatially flipped kernel (a "transposed convolution"); the kernel's cotangent is a
  convolution of the input with ``g`` used as the window. Strides of the forward pass
  become input dilations and dilations become strides; feature groups and batch groups
  trade places.

Every operation a rule emits (``dot_general``, ``conv_general_dilated``, ``transpose``,
``reshape``, ``rev``, ``convert_element_type``) has a rule of its own, so the backward
pass can be differentiated again (Hessian-vector products).

Example:
    >>> import jax.numpy as jnp
    >>> from jax import lax
    >>> x, y = jnp.ones((2, 3)), jnp.ones((3, 4))
    >>> dx, dy = _dot_general_vjp(
    ...     jnp.ones((2, 4)), None, x, y,
    ...     dimension_numbers=(((1,), (0,)), ((), ())),
    ...     precision=None, preferred_element_type=None)
    >>> dx.shape, float(dx[0, 0])
    ((2, 3), 4.0)
"""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from fungrad.graph.registry import defvjp


def _differentiable(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.inexact)


def _inverse(permutation: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(permutation))


# --- dot_general ---------------------------------------------------------------------------


def _dot_operand_cotangent(g, other, own, other_axes, g_other_free, precision):
    """The cotangent of one ``dot_general`` operand.

    Args:
        g: the output cotangent, axes ``[batch..., lhs free..., rhs free...]``.
        other: the other operand.
        own: ``(ndim, contracting, batch)`` of the operand whose cotangent is wanted.
        other_axes: ``(contracting, batch)`` of the other operand, paired with ``own``'s.
        g_other_free: the axes of ``g`` that hold the other operand's free axes.
        precision: passed to ``lax.dot_general``.

    Returns:
        ``sum over the other operand's free axes of g * other``, in the operand's axis order:
        ``d own[b, f, c] = sum_k g[b, f, k] other[b, c, k]``.
    """
    ndim, contracting, batch = own
    other_contracting, other_batch = other_axes
    used = set(other_contracting) | set(other_batch)
    other_free = [axis for axis in range(other.ndim) if axis not in used]
    n_batch = len(batch)
    out = lax.dot_general(
        g,
        other.astype(g.dtype),
        ((tuple(g_other_free), tuple(other_free)), (tuple(range(n_batch)), tuple(other_batch))),
        precision=precision,
    )
    # out's axes: batch, this operand's free axes (ascending), then the other operand's
    # contracting axes in ascending order, each standing for its paired axis here.
    own_free = [a for a in range(ndim) if a not in set(contracting) | set(batch)]
    paired = sorted(zip(other_contracting, contracting, strict=True))
    axes = list(batch) + own_free + [mine for _, mine in paired]
    return lax.transpose(out, _inverse(axes))


def _dot_general_vjp(g, ans, x, y, *, dimension_numbers, precision, preferred_element_type, **_):
    """``dot_general``: ``d x = g . y`` and ``d y = g . x`` over the complementary axes."""
    (x_contracting, y_contracting), (x_batch, y_batch) = dimension_numbers
    n_batch = len(x_batch)
    n_x_free = x.ndim - len(x_contracting) - n_batch
    g_x_free = range(n_batch, n_batch + n_x_free)
    g_y_free = range(n_batch + n_x_free, g.ndim)
    dx = dy = None
    if _differentiable(x):
        own = (x.ndim, x_contracting, x_batch)
        dx = _dot_operand_cotangent(g, y, own, (y_contracting, y_batch), g_y_free, precision)
        dx = dx.astype(x.dtype)
    if _differentiable(y):
        own = (y.ndim, y_contracting, y_batch)
        dy = _dot_operand_cotangent(g, x, own, (x_contracting, x_batch), g_x_free, precision)
        dy = dy.astype(y.dtype)
    return dx, dy


defvjp(lax.dot_general_p, _dot_general_vjp)


# --- conv_general_dilated ------------------------------------------------------------------
#
# One spatial axis, canonical layouts lhs (B, C, n), rhs (O, I, k), out (B, O, m). The forward
# pass dilates lhs by ld and pads it by (lo, hi) into lhs_p, then, with strides s and kernel
# dilation rd,
#     out[b, o, y] = sum_{i, t} lhs_p[b, group(o) * I + i, y * s + t * rd] * rhs[o, i, t].
# So d lhs_p[b, c, j] collects g[b, o, y] * rhs[o, c, t] over y * s + t * rd = j: the output
# cotangent dilated by s, padded low by (k - 1) * rd, and correlated with the flipped kernel
# dilated by rd; lhs itself sits at the positions lo + x * ld of lhs_p, hence stride ld and
# the low padding (k - 1) * rd - lo. Likewise d rhs[o, i, t] sums g[b, o, y] *
# lhs_p[b, c, y * s + t * rd] over b and y: lhs_p correlated with g (dilated by s) at stride
# rd, the batch axis B playing the feature axis, so feature groups become batch groups.


def _spatial_parameters(g, lhs, rhs, params):
    """Per spatial axis: ``(n, k, m, s, (lo, hi), ld, rd)`` as in the comment above."""
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    return zip(
        [lhs.shape[axis] for axis in lhs_spec[2:]],
        [rhs.shape[axis] for axis in rhs_spec[2:]],
        [g.shape[axis] for axis in out_spec[2:]],
        params["window_strides"],
        params["padding"],
        params["lhs_dilation"],
        params["rhs_dilation"],
        strict=True,
    )


def _swap_first_two(spec):
    return (spec[1], spec[0], *spec[2:])


def _grouped_kernel(rhs, rhs_spec, groups):
    """``rhs`` as the kernel of the input cotangent when there are ``groups`` groups.

    ``(O, I, K...) -> (groups * I, O / groups, K...)``: each group's output features become
    the input features of the transposed convolution, in canonical layout.
    """
    canonical = lax.transpose(rhs, tuple(rhs_spec))
    out_features, in_features, *window = canonical.shape
    split = canonical.reshape(groups, out_features // groups, in_features, *window)
    swapped = lax.transpose(split, (0, 2, 1, *range(3, split.ndim)))
    return swapped.reshape(groups * in_features, out_features // groups, *window)


def _batch_groups_to_batch(d_lhs, groups, lhs_spec):
    """``(N, groups * C, L...)`` canonical -> ``(groups * N, C, L...)`` in ``lhs_spec`` layout."""
    batch, features, *spatial = d_lhs.shape
    split = d_lhs.reshape(batch, groups, features // groups, *spatial)
    moved = lax.transpose(split, (1, 0, *range(2, split.ndim)))
    merged = moved.reshape(groups * batch, features // groups, *spatial)
    return lax.transpose(merged, _inverse(lhs_spec))


def _conv_lhs_cotangent(g, lhs, rhs, params):
    """The input's cotangent: ``g`` correlated with the spatially flipped kernel."""
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    feature_groups, batch_groups = params["feature_group_count"], params["batch_group_count"]
    groups = max(feature_groups, batch_groups)
    if groups == 1:
        kernel, kernel_spec = rhs, _swap_first_two(rhs_spec)
    else:
        kernel, kernel_spec = _grouped_kernel(rhs, rhs_spec, groups), tuple(range(rhs.ndim))
    kernel = lax.rev(kernel, tuple(kernel_spec[2:])).astype(g.dtype)
    sizes = _spatial_parameters(g, lhs, rhs, params)
    padding = [
        ((k - 1) * rd - lo, (n - 1) * ld + lo - (m - 1) * s)
        for n, k, m, s, (lo, _), ld, rd in sizes
    ]
    result_spec = lhs_spec if batch_groups == 1 else tuple(range(lhs.ndim))
    d_lhs = lax.conv_general_dilated(
        g,
        kernel,
        window_strides=params["lhs_dilation"],
        padding=padding,
        lhs_dilation=params["window_strides"],
        rhs_dilation=params["rhs_dilation"],
        dimension_numbers=lax.ConvDimensionNumbers(out_spec, kernel_spec, result_spec),
        feature_group_count=groups,
        precision=params["precision"],
    )
    if batch_groups > 1:
        d_lhs = _batch_groups_to_batch(d_lhs, batch_groups, lhs_spec)
    return d_lhs.astype(lhs.dtype)


def _conv_rhs_cotangent(g, lhs, rhs, params):
    """The kernel's cotangent: the padded input correlated with ``g`` as the window."""
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    sizes = _spatial_parameters(g, lhs, rhs, params)
    # The high padding keeps exactly the input positions some output reads.
    padding = [
        (lo, (m - 1) * s + (k - 1) * rd - (n - 1) * ld - lo)
        for n, k, m, s, (lo, _), ld, rd in sizes
    ]
    d_rhs = lax.conv_general_dilated(
        lhs.astype(g.dtype),
        g,
        window_strides=params["rhs_dilation"],
        padding=padding,
        lhs_dilation=params["lhs_dilation"],
        rhs_dilation=params["window_strides"],
        dimension_numbers=lax.ConvDimensionNumbers(
            _swap_first_two(lhs_spec), _swap_first_two(out_spec), _swap_first_two(rhs_spec)
        ),
        feature_group_count=params["batch_group_count"],
        batch_group_count=params["feature_group_count"],
        precision=params["precision"],
    )
    return d_rhs.astype(rhs.dtype)


def _conv_general_dilated_vjp(g, ans, lhs, rhs, **params):
    """``conv_general_dilated``: a transposed convolution for the input, a correlation for the kernel."""
    params["dimension_numbers"] = lax.conv_dimension_numbers(
        lhs.shape, rhs.shape, params["dimension_numbers"]
    )
    d_lhs = _conv_lhs_cotangent(g, lhs, rhs, params) if _differentiable(lhs) else None
    d_rhs = _conv_rhs_cotangent(g, lhs, rhs, params) if _differentiable(rhs) else None
    return d_lhs, d_rhs


defvjp(lax.conv_general_dilated_p, _conv_general_dilated_vjp)

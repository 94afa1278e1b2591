"""A small convolutional network for square images, as a pure function of a params dict.

The architecture ``fungrad train --model cnn`` trains (with the general engine,
:mod:`fungrad.graph`, since the MLP engine knows only dense layers):

    image (s, s, c) -> conv 3x3, c1 filters, same padding -> relu -> 2x2 max pool
                    -> conv 3x3, c2 filters, same padding -> relu -> 2x2 max pool
                    -> flatten -> dense -> outputs

A 2x2 pool with stride 2 halves each side, rounding up (``8 -> 4 -> 2``, ``28 -> 14 -> 7``),
so the dense layer takes ``ceil(ceil(s / 2) / 2) ** 2 * c2`` inputs. Images come in as rows
``(n, s * s * c)`` (as loaders give them, row by row, channels last) or as ``(n, s, s, c)``.

Parameters: ``{"conv1": {"w": (3, 3, c, c1), "b": (c1,)}, "conv2": {"w": (3, 3, c1, c2),
"b": (c2,)}, "dense": {"w": (d, k), "b": (k,)}}``; nothing is hidden.

Example:
    >>> import jax
    >>> params = init(jax.random.key(0), side=8, n_outputs=10)
    >>> jax.jit(apply)(params, jax.numpy.zeros((5, 64))).shape
    (5, 10)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from fungrad._checks import positive_int

__all__ = ["init", "apply", "image_side", "describe", "parameter_count"]

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def image_side(n_features: int, channels: int = 1) -> int:
    """The side ``s`` of square images of ``n_features = s * s * channels`` values.

    Raises:
        ValueError: if ``n_features`` is not ``channels`` times a square.

    Example:
        >>> image_side(784)
        28
    """
    side = math.isqrt(n_features // channels) if n_features % channels == 0 else 0
    if side < 1 or side * side * channels != n_features:
        raise ValueError(
            f"--model cnn: expected square images with {channels} channel(s) "
            f"(s * s * {channels} values per row), got rows of {n_features} values"
        )
    return side


def _pooled(side: int) -> int:
    """The side after two 2x2 pools with stride 2, each rounding up."""
    return math.ceil(math.ceil(side / 2) / 2)


def init(
    key: jax.Array,
    *,
    side: int,
    n_outputs: int,
    in_channels: int = 1,
    channels: tuple[int, int] = (16, 32),
    dtype: Any = jnp.float32,
) -> dict:
    """Parameters of the CNN: He-normal kernels (scaled for relu), Glorot head, zero biases.

    Args:
        key: a PRNG key.
        side: the images' side ``s``.
        n_outputs: the width of the last layer (the number of classes).
        in_channels: the images' channels ``c``.
        channels: the filters of the two convolutions ``(c1, c2)``.
        dtype: the parameters' dtype.

    Returns:
        The params dict described in the module's docstring.
    """
    side, n_outputs = positive_int("side", side), positive_int("n_outputs", n_outputs)
    in_channels = positive_int("in_channels", in_channels)
    c1, c2 = (positive_int("channels", c) for c in channels)
    return _init(key, side, n_outputs, in_channels, (c1, c2), jnp.dtype(dtype))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _init(key, side, n_outputs, in_channels, channels, dtype) -> dict:
    """:func:`init` as one compiled call per shape and dtype."""
    (c1, c2), flat = channels, _pooled(side) ** 2 * channels[1]
    he, glorot = jax.nn.initializers.he_normal(), jax.nn.initializers.glorot_normal()
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "conv1": {"w": he(k1, (3, 3, in_channels, c1), dtype), "b": jnp.zeros(c1, dtype)},
        "conv2": {"w": he(k2, (3, 3, c1, c2), dtype), "b": jnp.zeros(c2, dtype)},
        "dense": {"w": glorot(k3, (flat, n_outputs), dtype), "b": jnp.zeros(n_outputs, dtype)},
    }


def _block(layer: dict, h: jax.Array) -> jax.Array:
    """3x3 convolution (same padding) -> relu -> 2x2 max pool (stride 2, rounding up)."""
    h = lax.conv_general_dilated(h, layer["w"], (1, 1), "SAME", dimension_numbers=_DIMENSIONS)
    h = jax.nn.relu(h + layer["b"])
    return lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")


def apply(params: dict, x: jax.Array) -> jax.Array:
    """The outputs ``(n, k)`` for images ``(n, s * s * c)`` or ``(n, s, s, c)``."""
    channels = params["conv1"]["w"].shape[2]
    x = jnp.asarray(x, params["conv1"]["w"].dtype)
    if x.ndim == 2:
        side = image_side(x.shape[1], channels)
        x = x.reshape(x.shape[0], side, side, channels)
    h = _block(params["conv2"], _block(params["conv1"], x))
    return h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"]


def describe(params: dict) -> str:
    """``"CNN conv16-conv32-10"``: the filters and the output width, for summaries."""
    c1, c2 = params["conv1"]["w"].shape[-1], params["conv2"]["w"].shape[-1]
    return f"CNN conv{c1}-conv{c2}-{params['dense']['w'].shape[-1]}"


def parameter_count(params: dict) -> int:
    """The number of weights and biases."""
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))

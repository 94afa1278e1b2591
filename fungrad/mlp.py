"""Multi-layer perceptrons as pure functions over a plain list of ``{"w", "b"}`` dicts.

For ``sizes = [n0, n1, ..., nK]`` the parameters are K dicts; layer ``k`` holds
``w: (n_{k-1}, n_k)`` and ``b: (n_k,)`` and computes ``z = x @ w + b``. Hidden layers then
apply ``activation``, the last layer ``output_activation``::

    F(x) = g(f(... f(x @ w1 + b1) ...) @ wK + bK)

Nothing is hidden: parameters can be built, read, edited and saved with plain Python.

Parameters are ``float32`` (the default), ``float64``, or ``bfloat16``/``float16`` for mixed
precision: with low-precision parameters the input is cast to their dtype, so the forward pass
runs in it, while losses and sums over the batch are taken in float32
(:func:`fungrad.losses.accumulation_dtype`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from fungrad._checks import ArgumentTypeError, floating_leaves, positive_int
from fungrad.activations import Activation, get_activation
from fungrad.losses import accumulation_dtype

__all__ = ["Params", "init", "apply", "check_params", "layer_sizes"]

Params = list[dict[str, jax.Array]]
Initializer = Callable[[jax.Array, tuple[int, ...], Any], jax.Array]

_HE_FAMILY = ("relu", "leaky_relu", "elu", "gelu", "softplus")


def _default_initializer(activation: str | Activation) -> Initializer:
    return _initializer_for(get_activation(activation).name)


# The standard deviation of a unit normal truncated to [-2, 2]: dividing by it gives the
# truncated draw the variance asked for (as jax.nn.initializers.variance_scaling does).
_TRUNCATED_STD = 0.87962566103423978


def _truncated_normal(variance: Callable[[int, int], float]) -> Initializer:
    """``(key, (n_in, n_out), dtype) -> w`` with ``Var(w) = variance(n_in, n_out)``.

    The draws of ``jax.nn.initializers.he_normal()`` / ``glorot_normal()`` (equal up to the
    last bit's rounding), made as one flat vector and reshaped: XLA on CPU compiles a flat
    draw about four times faster.
    """

    def initializer(key, shape, dtype=jnp.float32):
        n_in, n_out = shape
        std = jnp.array(math.sqrt(variance(n_in, n_out)) / _TRUNCATED_STD, dtype)
        flat = jax.random.truncated_normal(key, -2.0, 2.0, (n_in * n_out,), dtype)
        return (flat * std).reshape(shape)

    return initializer


@functools.cache
def _initializer_for(name: str) -> Initializer:
    """One initializer object per activation, so :func:`_init_program` is reused."""
    if name in _HE_FAMILY:
        # He: Var(w) = 2 / n_in keeps the variance of relu-like activations stable.
        return _truncated_normal(lambda n_in, n_out: 2.0 / n_in)
    # Glorot: Var(w) = 2 / (n_in + n_out) suits tanh, sigmoid and identity.
    return _truncated_normal(lambda n_in, n_out: 2.0 / (n_in + n_out))


def _check_sizes(sizes: Any) -> list[int]:
    """``sizes`` as a list of at least two Python ints ``>= 1`` (NumPy/JAX integers accepted)."""
    expected = "sizes: expected at least two positive integers [n_in, ..., n_out], got"
    try:
        sizes = list(sizes)
    except TypeError:
        raise ArgumentTypeError(f"{expected} {type(sizes).__name__}") from None
    if len(sizes) < 2:
        raise ValueError(f"{expected} {sizes}")
    checked = []
    for i, n in enumerate(sizes):
        try:
            checked.append(positive_int(f"sizes[{i}]", n))
        except ValueError as error:  # ArgumentTypeError is one too, and keeps its type
            raise type(error)(f"{expected} {sizes}; {error}") from None
    return checked


def _check_key(key: Any) -> None:
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        one_key = shape == ()
    else:
        one_key = dtype == jnp.uint32 and tuple(shape) == (2,)  # a raw jax.random.PRNGKey
    if not one_key:
        got = f"{type(key).__name__} of shape {shape}" if shape is not None else repr(key)
        raise TypeError(f"key: expected one PRNG key such as jax.random.key(0), got {got}")


def _check_dtype(dtype: Any) -> Any:
    if dtype is None:
        return None  # the initializer's own default
    try:
        checked = jnp.dtype(dtype)
    except TypeError:
        checked = None
    if checked is None or not jnp.issubdtype(checked, jnp.floating):
        raise TypeError(f"dtype: expected a floating dtype such as jnp.float32, got {dtype!r}")
    return checked


def init(
    key: jax.Array,
    sizes: Sequence[int],
    *,
    dtype: Any = jnp.float32,
    activation: str | Activation = "relu",
    weight_init: Initializer | None = None,
) -> Params:
    """Initialise an MLP with layer widths ``sizes = [n0, n1, ..., nK]``.

    Weights are drawn from ``weight_init(key, (n_in, n_out), dtype)``; biases start at 0.
    The default is scaled for ``activation``: He normal (``Var(w) = 2 / n_in``) for the
    relu family, Glorot normal (``Var(w) = 2 / (n_in + n_out)``) for tanh, sigmoid and
    identity. Any ``jax.nn.initializers`` initializer can be given instead.

    Args:
        key: a PRNG key.
        sizes: at least two positive integers (Python, NumPy or JAX): the input width, then
            each layer's width.
        dtype: the parameters' dtype: ``jnp.float32``, ``jnp.float64``, or ``jnp.bfloat16``
            or ``jnp.float16`` to train in mixed precision.
        activation: the hidden activation the default initialiser is scaled for.
        weight_init: an initializer ``(key, shape, dtype) -> array`` to use instead.

    Returns:
        ``[{"w": (n0, n1), "b": (n1,)}, ..., {"w": (n_{K-1}, nK), "b": (nK,)}]``.

    Raises:
        ValueError: if ``sizes`` has fewer than two entries or a non-positive width.
        TypeError: for a width that is not an integer (also a ``ValueError``), a ``key`` that
            is not one PRNG key, or a ``dtype`` that is not a floating dtype.

    Example:
        >>> import jax
        >>> params = init(jax.random.key(0), [4, 8, 3])
        >>> [p["w"].shape for p in params]
        [(4, 8), (8, 3)]
    """
    sizes = _check_sizes(sizes)
    _check_key(key)
    dtype = _check_dtype(dtype)
    initializer = weight_init if weight_init is not None else _default_initializer(activation)
    return _init_program(tuple(sizes), jnp.dtype(dtype), initializer)(key)


@functools.lru_cache(maxsize=64)
def _init_program(sizes: tuple[int, ...], dtype: Any, initializer: Initializer):
    """All layers' parameters drawn in one compiled call (one dispatch, not one per array)."""

    def draw(key):
        keys = jax.random.split(key, len(sizes) - 1)
        return [
            {"w": initializer(k, (n_in, n_out), dtype), "b": jnp.zeros((n_out,), dtype)}
            for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
        ]

    return jax.jit(draw)


def check_params(params: Any, *, argname: str = "params") -> None:
    """Raise a clear error unless ``params`` is in the pinned layout.

    The layout is a non-empty list (or tuple) of dicts with exactly the keys ``"w"`` (2-D) and
    ``"b"`` (1-D), where ``b`` matches ``w``'s columns and each ``w``'s rows match the previous
    layer's width, all of a floating dtype. Only shapes and dtypes are read, so this is free
    under ``jit``.

    Raises:
        TypeError: for a layout other than a list of ``{"w", "b"}`` dicts, or an integer or
            bool leaf (naming the leaf and its dtype).
        ValueError: for shapes that do not chain.
    """
    if not isinstance(params, (list, tuple)) or not params:
        raise TypeError(
            f"{argname}: expected a non-empty list of {{'w', 'b'}} dicts, "
            f"got {type(params).__name__}"
        )
    previous = None
    for i, layer in enumerate(params):
        if not isinstance(layer, dict) or set(layer) != {"w", "b"}:
            got = sorted(layer) if isinstance(layer, dict) else type(layer).__name__
            raise TypeError(f"{argname}[{i}]: expected a dict with keys 'w' and 'b', got {got}")
        w_shape, b_shape = jnp.shape(layer["w"]), jnp.shape(layer["b"])
        if len(w_shape) != 2:
            raise ValueError(
                f"{argname}[{i}]['w']: expected a 2-D (n_in, n_out) array, got {w_shape}"
            )
        if b_shape != (w_shape[1],):
            raise ValueError(f"{argname}[{i}]['b']: expected shape ({w_shape[1]},), got {b_shape}")
        if previous is not None and w_shape[0] != previous:
            raise ValueError(
                f"{argname}[{i}]['w']: expected {previous} rows to follow the previous layer's "
                f"{previous} outputs, got shape {w_shape}"
            )
        previous = w_shape[1]
    floating_leaves(argname, params)


def layer_sizes(params: Params) -> list[int]:
    """The widths ``[n0, n1, ..., nK]`` of an MLP's parameters."""
    return [jnp.shape(params[0]["w"])[0]] + [jnp.shape(p["w"])[1] for p in params]


def check_input(params: Params, x: Any, *, argname: str = "x") -> jax.Array:
    """Check that ``x`` is one sample ``(n0,)`` or a batch ``(batch, n0)`` for ``params``.

    Returns ``x`` as an array: integers become floats, and for ``bfloat16``/``float16``
    parameters ``x`` takes their dtype (the forward pass runs in the parameters' precision).
    """
    x = jnp.asarray(x)
    n_in = jnp.shape(params[0]["w"])[0]
    if x.ndim not in (1, 2) or x.shape[-1] != n_in:
        raise ValueError(
            f"{argname}: expected shape ({n_in},) or (batch, {n_in}) to match the first layer, "
            f"got {x.shape}"
        )
    dtype = jnp.dtype(params[0]["w"].dtype)
    if accumulation_dtype(dtype) != dtype:
        return x if x.dtype == dtype else x.astype(dtype)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(dtype, jnp.float32))
    return x


def apply(
    params: Params,
    x: jax.Array,
    *,
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
) -> jax.Array:
    """Run the MLP: ``z_k = a_{k-1} @ w_k + b_k``, ``a_k = f(z_k)``, last layer ``g(z_K)``.

    Args:
        params: the layer list from :func:`init` (or any list in that layout).
        x: one sample ``(n0,)`` or a batch ``(batch, n0)``.
        activation: hidden activation, a name or :class:`fungrad.Activation`.
        output_activation: the last layer's activation.

    Returns:
        ``(nK,)`` for one sample, ``(batch, nK)`` for a batch; dtype follows the inputs.

    Raises:
        ValueError, TypeError: on parameters not in the pinned layout, an input whose last axis
            does not match the first layer, or an unknown activation name.
    """
    check_params(params)
    x = check_input(params, x)
    hidden = get_activation(activation)
    output = get_activation(output_activation, argname="output_activation")
    a = x
    for i, layer in enumerate(params):
        z = a @ layer["w"] + layer["b"]
        a = output.fn(z) if i == len(params) - 1 else hidden.fn(z)
    return a

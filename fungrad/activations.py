"""Named activation functions, each with its hand-written derivative.

An activation is applied elementwise, ``a = f(z)``, so its Jacobian is diagonal and its
vector-Jacobian product is a plain product: ``delta_z = delta_a * f'(z)``. Each activation
here carries ``f`` and ``f'`` side by side; the backprop engine only ever uses ``f'``.

A user adds an activation by building :class:`Activation` directly and passing it wherever a
name is accepted, or by registering it under a name with :func:`register_activation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

__all__ = ["Activation", "get_activation", "register_activation", "activation_names"]


class Activation(NamedTuple):
    """An elementwise activation ``f`` and its derivative ``f'``, both functions of ``z``.

    Attributes:
        name: the name shown in errors and histories.
        fn: ``z -> f(z)``, elementwise.
        derivative: ``z -> f'(z)``, elementwise, written by hand (not by autodiff).
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    derivative: Callable[[jax.Array], jax.Array]

    def __call__(self, z: jax.Array) -> jax.Array:
        return self.fn(z)


def _identity(z):
    return z


def _identity_derivative(z):
    return jnp.ones_like(z)


def _relu(z):
    # jax.nn.relu, not maximum(z, 0): autodiff of maximum gives 1/2 at z = 0, while relu's
    # derivative (here and in jax.nn.relu) is 0 there. A dead layer makes z exactly 0.
    return jax.nn.relu(z)


def _relu_derivative(z):
    # f'(0) = 0 by convention, as in jax.nn.relu.
    return (z > 0).astype(z.dtype)


_LEAKY_SLOPE = 0.01


def _leaky_relu(z):
    return jnp.where(z >= 0, z, _LEAKY_SLOPE * z)


def _leaky_relu_derivative(z):
    return jnp.where(z >= 0, 1.0, _LEAKY_SLOPE).astype(z.dtype)


def _elu(z):
    # expm1 on min(z, 0) keeps the unused branch finite for large z.
    return jnp.where(z > 0, z, jnp.expm1(jnp.minimum(z, 0)))


def _elu_derivative(z):
    return jnp.where(z > 0, 1.0, jnp.exp(jnp.minimum(z, 0))).astype(z.dtype)


def _tanh(z):
    return jnp.tanh(z)


def _tanh_derivative(z):
    return 1 - jnp.tanh(z) ** 2


def _sigmoid(z):
    return jax.nn.sigmoid(z)


def _sigmoid_derivative(z):
    s = jax.nn.sigmoid(z)
    return s * (1 - s)


def _softplus(z):
    # log(1 + e^z) = logaddexp(z, 0), stable for large |z|.
    return jnp.logaddexp(z, 0)


def _softplus_derivative(z):
    return jax.nn.sigmoid(z)


def _gelu(z):
    # Exact form: z * Phi(z), Phi the standard normal CDF.
    return 0.5 * z * (1 + erf(z / math.sqrt(2)))


def _gelu_derivative(z):
    # d/dz [z Phi(z)] = Phi(z) + z phi(z).
    cdf = 0.5 * (1 + erf(z / math.sqrt(2)))
    pdf = jnp.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return cdf + z * pdf


_REGISTRY: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", _identity, _identity_derivative),
        Activation("relu", _relu, _relu_derivative),
        Activation("leaky_relu", _leaky_relu, _leaky_relu_derivative),
        Activation("elu", _elu, _elu_derivative),
        Activation("tanh", _tanh, _tanh_derivative),
        Activation("sigmoid", _sigmoid, _sigmoid_derivative),
        Activation("softplus", _softplus, _softplus_derivative),
        Activation("gelu", _gelu, _gelu_derivative),
    )
}


def activation_names() -> tuple[str, ...]:
    """The names :func:`get_activation` accepts, in registration order."""
    return tuple(_REGISTRY)


def register_activation(
    name: str,
    fn: Callable[[jax.Array], jax.Array],
    derivative: Callable[[jax.Array], jax.Array],
) -> Activation:
    """Register an activation so it can be asked for by ``name``.

    Args:
        name: the new name; must not shadow a built-in.
        fn: ``z -> f(z)``, elementwise and jit-compatible.
        derivative: ``z -> f'(z)``, elementwise and jit-compatible.

    Returns:
        The registered :class:`Activation`.

    Raises:
        ValueError: if ``name`` is already registered.
        TypeError: if ``fn`` or ``derivative`` is not callable.

    Example:
        >>> import jax.numpy as jnp
        >>> swish = register_activation(
        ...     "swish_example", lambda z: z / (1 + jnp.exp(-z)),
        ...     lambda z: (1 + jnp.exp(-z) + z * jnp.exp(-z)) / (1 + jnp.exp(-z)) ** 2)
        >>> get_activation("swish_example") is swish
        True
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty string, got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"name: activation {name!r} is already registered")
    for arg, value in (("fn", fn), ("derivative", derivative)):
        if not callable(value):
            raise TypeError(f"{arg}: expected a callable z -> array, got {type(value).__name__}")
    activation = Activation(name, fn, derivative)
    _REGISTRY[name] = activation
    return activation


def get_activation(activation: str | Activation, *, argname: str = "activation") -> Activation:
    """Resolve a name or an :class:`Activation` to an :class:`Activation`.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).
        TypeError: for anything that is neither a string nor an :class:`Activation`.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        try:
            return _REGISTRY[activation]
        except KeyError:
            raise ValueError(
                f"{argname}: unknown activation {activation!r}; "
                f"expected one of {', '.join(activation_names())}"
            ) from None
    raise TypeError(
        f"{argname}: expected an activation name or fungrad.Activation, "
        f"got {type(activation).__name__}"
    )

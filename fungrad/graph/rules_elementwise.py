"""Hand-written VJP rules for elementwise primitives.

For ``y = p(x)`` applied elementwise the Jacobian is diagonal, so the rule is a product:
``xbar = ybar * p'(x)`` (often cheaper written with the output, e.g. ``exp' = exp = ans``).
A binary op ``y = p(x1, x2)`` hands ``ybar * dp/dx1`` and ``ybar * dp/dx2`` back. JAX's
elementwise primitives take operands of equal shapes, except that a scalar operand may
meet an array one; that operand's cotangent is the sum over the positions it was broadcast
to (``_unbroadcast``). Derivatives at kinks follow JAX's conventions so values agree
everywhere: ``abs'(0) = 1``, ``max`` splits a tie evenly, ``clamp`` passes nothing at a tie.

Comparisons, logic, rounding and ``sign`` have zero derivative (or none): their rules
return ``None`` for every input.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax import lax

from fungrad.graph.registry import defvjp


def _unbroadcast(x, ct):
    """Sum ``ct`` down to ``x``'s shape: a scalar or size-1 operand met a larger one."""
    shape = np.shape(x)
    if ct.shape == shape:
        return ct
    if ct.ndim > len(shape):
        ct = jnp.sum(ct, axis=tuple(range(ct.ndim - len(shape))))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and ct.shape[i] != 1)
    return jnp.sum(ct, axis=axes, keepdims=True) if axes else ct


def _unary(derivative):
    """A rule ``xbar = g * derivative(ans, x)`` for a unary primitive."""
    return lambda g, ans, x, **params: (g * derivative(ans, x),)


def _binary(d_x, d_y):
    """A rule for ``y = p(x1, x2)``: ``(g * d_x, g * d_y)``, each summed to its operand."""

    def rule(g, ans, x, y, **params):
        return _unbroadcast(x, g * d_x(ans, x, y)), _unbroadcast(y, g * d_y(ans, x, y))

    return rule


def _no_gradient(g, ans, *args, **params):
    """Zero derivative (comparisons, logic, rounding, sign): no cotangent for any input."""
    return (None,) * len(args)


# --- Arithmetic --------------------------------------------------------------------------
def _add(g, ans, x, y, **params):
    return _unbroadcast(x, g), _unbroadcast(y, g)


def _sub(g, ans, x, y, **params):
    return _unbroadcast(x, g), _unbroadcast(y, -g)


def _mul(g, ans, x, y, **params):
    return _unbroadcast(x, g * y), _unbroadcast(y, g * x)


def _div(g, ans, x, y, **params):
    """``d(x/y)/dx = 1/y``, ``d(x/y)/dy = -x/y^2``."""
    return _unbroadcast(x, g / y), _unbroadcast(y, -g * x * lax.integer_pow(y, -2))


defvjp(lax.add_p, _add)
defvjp(lax.sub_p, _sub)
defvjp(lax.mul_p, _mul)
defvjp(lax.div_p, _div)
defvjp(lax.neg_p, lambda g, ans, x, **params: (-g,))
defvjp(lax.square_p, _unary(lambda ans, x: 2 * x))


def _integer_pow(g, ans, x, *, y, **params):
    """``d(x^n)/dx = n x^(n-1)`` for a fixed integer ``n`` (``y`` in the params)."""
    if y == 0:
        return (None,)
    return (g if y == 1 else g * (y * lax.integer_pow(x, y - 1)),)


def _pow(g, ans, x, y, **params):
    """``d(x^y)/dx = y x^(y-1)`` (zero where an integer ``y`` is 0), ``d(x^y)/dy = log(x) x^y``."""
    if jnp.issubdtype(jnp.result_type(y), jnp.integer):
        jac = jnp.where(y == 0, 0, y * lax.pow(x, y - 1)).astype(jnp.result_type(x))
        return _unbroadcast(x, g * jac), None
    log_x = jnp.log(jnp.where(x == 0, jnp.ones_like(x), x))
    return _unbroadcast(x, g * (y * lax.pow(x, y - 1))), _unbroadcast(y, g * (log_x * ans))


defvjp(lax.integer_pow_p, _integer_pow)
defvjp(lax.pow_p, _pow)
defvjp(lax.sqrt_p, _unary(lambda ans, x: 0.5 / ans))
defvjp(lax.rsqrt_p, _unary(lambda ans, x: -0.5 * (ans / x)))
defvjp(lax.cbrt_p, _unary(lambda ans, x: (1 / 3) * lax.integer_pow(ans, -2)))
defvjp(lax.rem_p, _binary(lambda ans, x, y: 1, lambda ans, x, y: -jnp.trunc(x / y)))


# --- Kinks: max, min, abs, clamp ---------------------------------------------------------
def _balanced(x, ans, y):
    """1 where ``x`` is the chosen value, 1/2 where ``x`` and ``y`` tie, else 0."""
    one = jnp.ones_like(ans)
    return jnp.where(x == ans, one, 0 * one) / jnp.where(y == ans, 2 * one, one)


def _max_min(g, ans, x, y, **params):
    return (
        _unbroadcast(x, g * _balanced(x, ans, y)),
        _unbroadcast(y, g * _balanced(y, ans, x)),
    )


def _clamp(g, ans, low, x, high, **params):
    """``clamp(low, x, high)``: ``x`` strictly inside gets ``g``; a bound beyond ``x`` gets it."""
    zero = jnp.zeros_like(g)
    return (
        _unbroadcast(low, jnp.where((low > x) & (low < high), g, zero)),
        _unbroadcast(x, jnp.where((x > low) & (x < high), g, zero)),
        _unbroadcast(high, jnp.where(high < x, g, zero)),
    )


def _select_n(g, ans, which, *cases, **params):
    """``select_n(which, *cases)`` picks ``cases[which]``: the chosen case gets ``g``."""
    zero = jnp.zeros_like(g)
    cts = [
        lax.select_n(which, *[g if j == i else zero for j in range(len(cases))])
        for i in range(len(cases))
    ]
    return (None, *cts)


defvjp(lax.max_p, _max_min)
defvjp(lax.min_p, _max_min)
defvjp(lax.abs_p, lambda g, ans, x, **params: (jnp.where(x >= 0, g, -g),))
defvjp(lax.clamp_p, _clamp)
defvjp(lax.select_n_p, _select_n)

# --- Exponentials and logarithms ---------------------------------------------------------
defvjp(lax.exp_p, _unary(lambda ans, x: ans))
defvjp(lax.exp2_p, _unary(lambda ans, x: math.log(2.0) * ans))
defvjp(lax.expm1_p, _unary(lambda ans, x: ans + 1))
defvjp(lax.log_p, lambda g, ans, x, **params: (g / x,))
defvjp(lax.log1p_p, lambda g, ans, x, **params: (g / (x + 1),))
defvjp(lax.logistic_p, _unary(lambda ans, x: ans * (1 - ans)))
defvjp(lax.tanh_p, lambda g, ans, x, **params: ((g + g * ans) * (1 - ans),))

# --- Trigonometric and hyperbolic --------------------------------------------------------
defvjp(lax.sin_p, _unary(lambda ans, x: lax.cos(x)))
defvjp(lax.cos_p, _unary(lambda ans, x: -lax.sin(x)))
defvjp(lax.tan_p, _unary(lambda ans, x: 1 + ans * ans))
defvjp(lax.asin_p, _unary(lambda ans, x: lax.rsqrt(1 - x * x)))
defvjp(lax.acos_p, _unary(lambda ans, x: -lax.rsqrt(1 - x * x)))
defvjp(lax.atan_p, lambda g, ans, x, **params: (g / (1 + x * x),))
defvjp(lax.sinh_p, _unary(lambda ans, x: lax.cosh(x)))
defvjp(lax.cosh_p, _unary(lambda ans, x: lax.sinh(x)))
defvjp(lax.asinh_p, _unary(lambda ans, x: lax.rsqrt(x * x + 1)))
defvjp(lax.acosh_p, _unary(lambda ans, x: lax.rsqrt((x - 1) * (x + 1))))
defvjp(lax.atanh_p, lambda g, ans, x, **params: (g / ((1 - x) * (1 + x)),))
defvjp(
    lax.atan2_p,
    _binary(lambda ans, x, y: y / (x * x + y * y), lambda ans, x, y: -x / (x * x + y * y)),
)

# --- Special functions -------------------------------------------------------------------
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
defvjp(lax.erf_p, _unary(lambda ans, x: _TWO_OVER_SQRT_PI * jnp.exp(-x * x)))
defvjp(lax.erfc_p, _unary(lambda ans, x: -_TWO_OVER_SQRT_PI * jnp.exp(-x * x)))
defvjp(lax.erf_inv_p, _unary(lambda ans, x: jnp.exp(ans * ans) / _TWO_OVER_SQRT_PI))
defvjp(lax.lgamma_p, _unary(lambda ans, x: lax.digamma(x)))

# --- No derivative -----------------------------------------------------------------------
for _primitive in (
    lax.eq_p, lax.ne_p, lax.lt_p, lax.le_p, lax.gt_p, lax.ge_p,
    lax.and_p, lax.or_p, lax.not_p, lax.xor_p, lax.is_finite_p,
    lax.floor_p, lax.ceil_p, lax.round_p, lax.sign_p, lax.nextafter_p,
):  # fmt: skip
    defvjp(_primitive, _no_gradient)

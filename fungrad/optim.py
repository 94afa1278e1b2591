"""Update rules as ``optax.GradientTransformation``s, built from optax's own pieces.

With ``g_t`` the gradient at step ``t`` and ``m_0 = 0``:

=========================  ===========================================  ==============================
rule                       state                                        weights
=========================  ===========================================  ==============================
``gd``, ``sgd``            (none)                                       ``w <- w - lr g_t``
``momentum`` heavy_ball    ``m_t = beta m_{t-1} + g_t``                 ``w <- w - lr m_t``
``momentum`` ema           ``m_t = beta m_{t-1} + (1 - beta) g_t``      ``w <- w - lr m_t``
``momentum`` nesterov      ``m_t = beta m_{t-1} + g_t``                 ``w <- w - lr (g_t + beta m_t)``
``adam``                   optax's Adam moments                         ``optax.adam``
=========================  ===========================================  ==============================

Momentum moves the weights by the momentum ``m_t``, not by the raw gradient. GD and SGD are the
same rule: how much data each step sees (``batch_size`` in :func:`fungrad.fit`) makes the
difference. A learning rate is a number, an optax schedule ``step -> lr``, or a traced array
(so a sweep over learning rates compiles once; see :func:`fungrad.fit_restarts`).

**Mixed precision.** An optimizer's statistics (momentum's ``m_t``, Adam's moments) are sums
over steps, so for ``bfloat16`` or ``float16`` parameters they are kept in float32:
:func:`mixed_precision` runs any rule on float32 copies of the gradients and hands back updates
in the parameters' dtype. :func:`fungrad.fit` and :func:`fungrad.fit_restarts` apply it
whenever the parameters are that narrow, and never otherwise.

The command line names rules by :data:`NAMES`: :func:`from_name` builds one, :func:`factory`
gives the ``learning_rate -> rule`` function a learning-rate sweep takes, and
:func:`default_learning_rate` the step size used when none is given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from fungrad._checks import ArgumentTypeError, finite_number, fraction, one_of
from fungrad.losses import accumulation_dtype, in_accumulation_dtype

__all__ = [
    "MOMENTUM_VARIANTS",
    "NAMES",
    "adam",
    "default_learning_rate",
    "factory",
    "from_name",
    "gd",
    "is_low_precision",
    "mixed_precision",
    "momentum",
    "sgd",
]

MOMENTUM_VARIANTS = ("heavy_ball", "ema", "nesterov")

NAMES = ("gd", "sgd", "momentum", "nesterov", "ema", "adam")
"""The rules by name: ``momentum`` is the heavy-ball variant, ``nesterov`` and ``ema`` the others."""

LearningRate = Any  # float | optax.Schedule | jax.Array


def _check_learning_rate(learning_rate: LearningRate) -> None:
    if callable(learning_rate) or isinstance(learning_rate, jax.core.Tracer):
        return
    try:
        value = finite_number("learning_rate", learning_rate)
    except ArgumentTypeError:
        raise ArgumentTypeError(
            "learning_rate: expected a positive number, an optax schedule or a traced array, "
            f"got {type(learning_rate).__name__}"
        ) from None
    if value <= 0:
        raise ValueError(f"learning_rate: expected a finite number > 0, got {value}")


def _check_unit_interval(name: str, value: Any) -> None:
    if not isinstance(value, jax.core.Tracer):
        fraction(name, value, include_one=False)


def gd(learning_rate: LearningRate) -> optax.GradientTransformation:
    """Gradient descent, ``w_k = w_{k-1} - lr * grad L(w_{k-1})``, on the full batch.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> opt = gd(0.1)
        >>> w = jnp.array(1.0)
        >>> updates, _ = opt.update(2 * w, opt.init(w))   # grad of w^2 + 1
        >>> round(float(optax.apply_updates(w, updates)), 6)
        0.8
    """
    _check_learning_rate(learning_rate)
    return optax.sgd(learning_rate)


def sgd(learning_rate: LearningRate) -> optax.GradientTransformation:
    """Stochastic gradient descent: the rule of :func:`gd`, applied to shuffled minibatches."""
    _check_learning_rate(learning_rate)
    return optax.sgd(learning_rate)


def momentum(
    learning_rate: LearningRate, beta: float = 0.9, *, variant: str = "heavy_ball"
) -> optax.GradientTransformation:
    """Gradient descent with momentum (the rolling ball).

    - ``"heavy_ball"``: ``m_t = beta m_{t-1} + g_t``, ``w <- w - lr m_t``
      (``optax.sgd(lr, momentum=beta)``).
    - ``"ema"``: ``m_t = beta m_{t-1} + (1 - beta) g_t``, ``w <- w - lr m_t``: the momentum is
      an exponential moving average of the gradients.
    - ``"nesterov"``: ``m_t = beta m_{t-1} + g_t``, ``w <- w - lr (g_t + beta m_t)``
      (``optax.sgd(lr, momentum=beta, nesterov=True)``).

    Args:
        learning_rate: a number > 0, an optax schedule, or a traced array.
        beta: the momentum coefficient, in ``[0, 1)``.
        variant: one of ``"heavy_ball"``, ``"ema"``, ``"nesterov"``.

    Raises:
        ValueError: for a non-positive learning rate, ``beta`` outside ``[0, 1)`` or an
            unknown variant.
    """
    _check_learning_rate(learning_rate)
    _check_unit_interval("beta", beta)
    variant = one_of("variant", variant, MOMENTUM_VARIANTS)
    if variant == "heavy_ball":
        return optax.sgd(learning_rate, momentum=beta)
    if variant == "nesterov":
        return optax.sgd(learning_rate, momentum=beta, nesterov=True)
    return optax.chain(
        optax.ema(decay=beta, debias=False), optax.scale_by_learning_rate(learning_rate)
    )


def adam(
    learning_rate: LearningRate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    """Adam (``optax.adam``): momentum on the gradient and on its square, bias-corrected.

    Raises:
        ValueError: for a non-positive learning rate, ``b1``/``b2`` outside ``[0, 1)`` or
            ``eps <= 0``.
    """
    _check_learning_rate(learning_rate)
    _check_unit_interval("b1", b1)
    _check_unit_interval("b2", b2)
    if not isinstance(eps, jax.core.Tracer) and not finite_number("eps", eps) > 0:
        raise ValueError(f"eps: expected a number > 0, got {eps}")
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


# --------------------------------------------------------------------------- mixed precision


def mixed_precision(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optimizer`` with its statistics in float32 for ``bfloat16``/``float16`` parameters.

    ``init`` and ``update`` see float32 copies of narrow floating leaves (the parameters, the
    gradients), so every statistic the rule keeps (``m_t``, Adam's ``mu`` and ``nu``) is
    float32; the updates it returns are rounded back to the gradients' dtype, and
    ``optax.apply_updates`` adds them in the parameters' dtype. Leaves that are float32 or
    float64 pass through untouched: for such parameters it is the same rule.

    Args:
        optimizer: any ``optax.GradientTransformation``.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose state is ``optimizer``'s state.

    Example:
        >>> import jax.numpy as jnp
        >>> opt = mixed_precision(adam(1e-3))
        >>> w = jnp.ones(3, jnp.bfloat16)
        >>> state = opt.init(w)
        >>> state[0].nu.dtype, opt.update(w, state)[0].dtype
        (dtype('float32'), dtype(bfloat16))
    """
    inner = optax.with_extra_args_support(optimizer)

    def init(params):
        return inner.init(in_accumulation_dtype(params))

    def update(updates, state, params=None, **extra_args):
        wide = in_accumulation_dtype(updates)
        new, state = inner.update(wide, state, in_accumulation_dtype(params), **extra_args)
        return jax.tree.map(_rounded_like, new, updates), state

    return optax.GradientTransformationExtraArgs(init, update)


def _rounded_like(update, gradient):
    if gradient is None or accumulation_dtype(gradient.dtype) == gradient.dtype:
        return update
    return jnp.asarray(update).astype(gradient.dtype)


def is_low_precision(params) -> bool:
    """Whether any leaf of ``params`` is a float narrower than float32 (bfloat16, float16).

    Example:
        >>> import jax.numpy as jnp
        >>> is_low_precision([jnp.ones(2, jnp.bfloat16)]), is_low_precision([jnp.ones(2)])
        (True, False)
    """
    return any(
        accumulation_dtype(leaf.dtype) != leaf.dtype
        for leaf in jax.tree.leaves(params)
        if hasattr(leaf, "dtype")
    )


# --------------------------------------------------------------------------- by name

_MOMENTUM_NAMES = {"momentum": "heavy_ball", "nesterov": "nesterov", "ema": "ema"}


def _check_name(name: Any) -> str:
    return one_of("name", name, NAMES)


def from_name(
    name: str, learning_rate: LearningRate, *, beta: float = 0.9
) -> optax.GradientTransformation:
    """The rule called ``name`` (one of :data:`NAMES`), with this learning rate.

    ``"gd"`` and ``"sgd"`` are :func:`gd` and :func:`sgd`; ``"momentum"``, ``"nesterov"`` and
    ``"ema"`` are :func:`momentum` with ``variant="heavy_ball"``, ``"nesterov"`` and ``"ema"``;
    ``"adam"`` is :func:`adam` with its default moments.

    Args:
        name: one of :data:`NAMES`.
        learning_rate: a number > 0, an optax schedule, or a traced array.
        beta: the momentum coefficient in ``[0, 1)``, for the momentum rules only.

    Returns:
        An ``optax.GradientTransformation``.

    Raises:
        ValueError: for an unknown ``name``, a bad ``learning_rate`` or ``beta``.

    Example:
        >>> import jax.numpy as jnp
        >>> opt = from_name("momentum", 0.1, beta=0.5)
        >>> w = jnp.array(1.0)
        >>> state = opt.init(w)
        >>> for _ in range(2):  # the gradient of w^2
        ...     updates, state = opt.update(2 * w, state)
        ...     w = w + updates
        >>> round(float(w), 6)  # 1 - 0.1 * 2, then 0.8 - 0.1 * (0.5 * 2 + 1.6)
        0.54
    """
    name = _check_name(name)
    numbers = (learning_rate, beta)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        # Plain numbers: the same rule object each time, so a program compiled for it is reused.
        return _cached_rule(name, float(learning_rate), float(beta))
    return _rule(name, learning_rate, beta)


def _rule(name: str, learning_rate: LearningRate, beta) -> optax.GradientTransformation:
    if name in _MOMENTUM_NAMES:
        return momentum(learning_rate, beta, variant=_MOMENTUM_NAMES[name])
    return {"gd": gd, "sgd": sgd, "adam": adam}[name](learning_rate)


@functools.cache
def _cached_rule(name: str, learning_rate: float, beta: float) -> optax.GradientTransformation:
    return _rule(name, learning_rate, beta)


def default_learning_rate(name: str) -> float:
    """The learning rate used when none is given: 0.001 for ``"adam"``, else 0.05.

    Raises:
        ValueError: for an unknown ``name``.
    """
    return 0.001 if _check_name(name) == "adam" else 0.05


def factory(
    name: str, *, beta: float = 0.9
) -> Callable[[LearningRate], optax.GradientTransformation]:
    """``learning_rate -> from_name(name, learning_rate, beta=beta)``, for learning-rate sweeps.

    :func:`fungrad.fit_restarts` takes such a factory with ``learning_rates=``. The same
    ``(name, beta)`` gives the same function object (``beta`` is ignored by the rules without
    momentum), so a compiled program keyed on it is reused by the next sweep.

    Args:
        name: one of :data:`NAMES`.
        beta: the momentum coefficient in ``[0, 1)``, a concrete number.

    Returns:
        A function ``learning_rate -> optax.GradientTransformation``.

    Raises:
        ValueError: for an unknown ``name`` or a ``beta`` outside ``[0, 1)``.

    Example:
        >>> factory("nesterov", beta=0.8) is factory("nesterov", beta=0.8)
        True
    """
    name = _check_name(name)
    if name not in _MOMENTUM_NAMES:
        return _factory(name, None)
    _check_unit_interval("beta", beta)
    return _factory(name, float(beta))


@functools.cache
def _factory(
    name: str, beta: float | None
) -> Callable[[LearningRate], optax.GradientTransformation]:
    def make(learning_rate: LearningRate) -> optax.GradientTransformation:
        return from_name(name, learning_rate, beta=0.9 if beta is None else beta)

    make.__name__ = make.__qualname__ = name if beta is None else f"{name}(beta={beta:g})"
    make.__doc__ = f"The {name!r} rule with this learning rate (fungrad.optim.factory)."
    return make

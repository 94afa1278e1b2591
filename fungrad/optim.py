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
"""

from __future__ import annotations

import math
from typing import Any

import jax
import optax

__all__ = ["gd", "sgd", "momentum", "adam", "MOMENTUM_VARIANTS"]

MOMENTUM_VARIANTS = ("heavy_ball", "ema", "nesterov")

LearningRate = Any  # float | optax.Schedule | jax.Array


def _check_learning_rate(learning_rate: LearningRate) -> None:
    if callable(learning_rate) or isinstance(learning_rate, jax.core.Tracer):
        return
    try:
        value = float(learning_rate)
    except (TypeError, ValueError):
        raise TypeError(
            "learning_rate: expected a positive number, an optax schedule or a traced array, "
            f"got {type(learning_rate).__name__}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"learning_rate: expected a finite number > 0, got {value}")


def _check_unit_interval(name: str, value: Any) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    value = float(value)
    if not 0 <= value < 1:
        raise ValueError(f"{name}: expected a value in [0, 1), got {value}")


def gd(learning_rate: LearningRate) -> optax.GradientTransformation:
    """Gradient descent, ``w_k = w_{k-1} - lr * grad L(w_{k-1})``, on the full batch.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> opt = gd(0.1)
        >>> w = jnp.array(1.0)
        >>> updates, _ = opt.update(2 * w, opt.init(w))   # grad of w^2 + 1
        >>> float(optax.apply_updates(w, updates))
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
    if variant == "heavy_ball":
        return optax.sgd(learning_rate, momentum=beta)
    if variant == "nesterov":
        return optax.sgd(learning_rate, momentum=beta, nesterov=True)
    if variant == "ema":
        return optax.chain(
            optax.ema(decay=beta, debias=False), optax.scale_by_learning_rate(learning_rate)
        )
    raise ValueError(f"variant: expected one of {', '.join(MOMENTUM_VARIANTS)}, got {variant!r}")


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
    if not isinstance(eps, jax.core.Tracer) and not float(eps) > 0:
        raise ValueError(f"eps: expected a number > 0, got {eps}")
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)

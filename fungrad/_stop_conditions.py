"""The stop conditions: :class:`StopCondition`, the metric-direction rule and the cached
factories (``max_epochs``, ``target``, ``plateau``, ``no_improvement``, ``grad_norm_below``).

Each condition is a predicate ``(history, epoch) -> bool`` over the per-epoch history arrays
the training loop carries, traceable so it runs inside ``lax.while_loop``. The public surface,
and the description of the model, is :mod:`fungrad.stopping`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fungrad._checks import finite_number, non_negative_number, positive_int

__all__ = [
    "StopCondition",
    "direction",
    "grad_norm_below",
    "max_epochs",
    "no_improvement",
    "plateau",
    "target",
]

History = dict[str, jax.Array]


class StopCondition(NamedTuple):
    """A named predicate ``(history, epoch) -> bool array`` and the metrics it reads.

    ``name`` is what :attr:`fungrad.FitResult.stop_reason` reports when it ends a run.
    """

    name: str
    predicate: Callable[[History, jax.Array], jax.Array]
    metrics: tuple[str, ...] = ()


def _metric(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"metric: expected a metric name such as 'val_loss', got {value!r}")
    return value


def direction(metric: str, mode: str | None = None) -> str:
    """Whether lower (``"min"``) or higher (``"max"``) values of ``metric`` are better.

    Args:
        metric: a recorded metric, e.g. ``"loss"``, ``"val_accuracy"``, ``"grad_norm"``.
        mode: ``"min"`` or ``"max"`` to say it outright; ``None`` infers it from the name:
            ``"max"`` if the name contains ``"accuracy"``, else ``"min"``.

    Returns:
        ``"min"`` or ``"max"``.

    Raises:
        ValueError: for an empty or non-string ``metric``, or a ``mode`` that is neither
            ``None``, ``"min"`` nor ``"max"``.

    Example:
        >>> direction("val_accuracy"), direction("val_loss"), direction("accuracy", "min")
        ('max', 'min', 'min')
    """
    metric = _metric(metric)
    if mode is None:
        return "max" if "accuracy" in metric else "min"
    if not isinstance(mode, str) or mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min', 'max' or None (inferred), got {mode!r}")
    return mode


# The public factories check and normalise their arguments, then build through a cache: the
# same arguments give the same condition object, so a compiled training program is reused.


def max_epochs(n: int) -> StopCondition:
    """Stop once ``n`` epochs have run."""
    return _max_epochs(positive_int("n", n))


@functools.cache
def _max_epochs(n: int) -> StopCondition:
    return StopCondition(f"max_epochs({n})", lambda history, epoch: epoch + 1 >= n)


def target(metric: str, threshold: float, mode: str | None = None) -> StopCondition:
    """Stop when ``metric`` reaches ``threshold``: ``m_e <= threshold`` (min) or ``>=`` (max).

    Args:
        metric: the recorded metric to watch.
        threshold: a finite number.
        mode: ``"min"``, ``"max"``, or ``None`` for the metric's :func:`direction`
            (``>=`` for accuracies, ``<=`` otherwise).

    Returns:
        The cached :class:`StopCondition`.

    Raises:
        ValueError: for a bad ``metric``, ``threshold`` or ``mode``.

    Example:
        >>> target("val_accuracy", 0.95).name, target("loss", 1e-3).name
        ('target(val_accuracy >= 0.95)', 'target(loss <= 0.001)')
    """
    mode = direction(metric, mode)
    return _target(metric, finite_number("threshold", threshold), mode)


@functools.cache
def _target(metric: str, threshold: float, mode: str) -> StopCondition:
    sign = "<=" if mode == "min" else ">="

    def predicate(history, epoch):
        value = history[metric][epoch]
        return value <= threshold if mode == "min" else value >= threshold

    return StopCondition(f"target({metric} {sign} {threshold:g})", predicate, (metric,))


def plateau(metric: str = "loss", tol: float = 1e-4, patience: int = 5) -> StopCondition:
    """Stop when ``metric`` barely changes: ``|m_e - m_{e-1}| <= tol`` for ``patience`` epochs running.

    This is "stationary", in either direction, not "no longer improving": a loss that rises
    slowly is a plateau, and one that bounces by more than ``tol`` around its best is not.
    For early stopping on a validation metric use :func:`no_improvement`.
    """
    return _plateau(
        _metric(metric), non_negative_number("tol", tol), positive_int("patience", patience)
    )


@functools.cache
def _plateau(metric: str, tol: float, patience: int) -> StopCondition:
    def predicate(history, epoch):
        values = history[metric]
        index = jnp.clip(epoch - jnp.arange(patience + 1), 0, values.shape[0] - 1)
        changes = jnp.abs(jnp.diff(values[index]))
        return (epoch >= patience) & jnp.all(changes <= tol)

    return StopCondition(
        f"plateau({metric} changed <= {tol:g} for {patience} epochs)", predicate, (metric,)
    )


def no_improvement(
    metric: str, patience: int, min_delta: float = 0.0, mode: str | None = None
) -> StopCondition:
    """Early stopping: stop when ``metric`` has not improved on its best for ``patience`` epochs.

    The rule of Keras' ``EarlyStopping``, over epochs ``0..epoch``: start with
    ``best = +inf`` (min; ``-inf`` for max) and ``wait = 0``; for each value ``m_e``, if
    ``m_e < best - min_delta`` (min; ``m_e > best + min_delta`` for max) then ``best = m_e``
    and ``wait = 0``, else ``wait += 1``. Stop when ``wait >= patience``. A NaN never
    improves. With ``min_delta = 0`` the run stops ``patience`` epochs after its best one.

    Args:
        metric: the recorded metric to watch, usually ``"val_loss"``.
        patience: how many epochs without improvement to allow, a positive integer.
        min_delta: how much better than the best a value must be to count, ``>= 0``.
        mode: ``"min"``, ``"max"``, or ``None`` for the metric's :func:`direction`.

    Returns:
        The cached :class:`StopCondition`.

    Raises:
        ValueError: for a bad ``metric``, ``patience``, ``min_delta`` or ``mode``.

    Example:
        >>> import jax.numpy as jnp
        >>> stop = no_improvement("val_loss", patience=2)
        >>> history = {"val_loss": jnp.array([3.0, 2.0, 2.5, 2.2, jnp.nan])}
        >>> [bool(stop.predicate(history, e)) for e in range(4)]
        [False, False, False, True]
    """
    mode = direction(metric, mode)
    return _no_improvement(
        metric,
        positive_int("patience", patience),
        non_negative_number("min_delta", min_delta),
        mode,
    )


@functools.cache
def _no_improvement(metric: str, patience: int, min_delta: float, mode: str) -> StopCondition:
    # Negating a "max" metric turns the rule into the "min" one: m > best + d <=> -m < -best - d.
    sign = 1.0 if mode == "min" else -1.0

    def predicate(history, epoch):
        values = history[metric]

        def step(carry, entry):
            best, wait = carry
            index, value = entry
            score = sign * value
            improved = score < best - min_delta  # False for NaN
            seen = index <= epoch
            best = jnp.where(seen & improved, score, best)
            wait = jnp.where(seen, jnp.where(improved, 0, wait + 1), wait)
            return (best, wait), None

        start = (jnp.asarray(jnp.inf, values.dtype), jnp.zeros((), jnp.int32))
        indices = jnp.arange(values.shape[0], dtype=jnp.int32)
        (_, wait), _ = jax.lax.scan(step, start, (indices, values))
        return wait >= patience

    change = "decrease" if mode == "min" else "increase"
    return StopCondition(
        f"no_improvement({metric}: no {change} > {min_delta:g} for {patience} epochs)",
        predicate,
        (metric,),
    )


def grad_norm_below(tol: float) -> StopCondition:
    """Stop when the epoch's last gradient norm (``history["grad_norm"]``) is below ``tol``.

    With full-batch gradient descent this is ``||grad L(w)|| < tol``: a stationary point.
    """
    return _grad_norm_below(non_negative_number("tol", tol))


@functools.cache
def _grad_norm_below(tol: float) -> StopCondition:
    return StopCondition(
        f"grad_norm_below({tol:g})",
        lambda history, epoch: history["grad_norm"][epoch] < tol,
        ("grad_norm",),
    )

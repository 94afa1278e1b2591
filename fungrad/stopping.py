"""Stop conditions as pure, traceable predicates on the history the training loop carries.

The loop keeps ``history``: a dict of arrays of length ``epochs`` (the cap), where entry
``e`` holds the metric after epoch ``e`` (NaN for epochs not yet run). A stop condition is a
predicate ``(history, epoch) -> bool`` evaluated after epoch ``epoch``; it runs the same in
Python and inside ``lax.while_loop``, which is what lets vmapped restarts stop one by one.

The factories are cached: the same arguments give the same condition object, so a training
program compiled with it is reused by the next ``fit`` with the same settings.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["StopCondition", "max_epochs", "target", "plateau", "grad_norm_below"]

History = dict[str, jax.Array]


class StopCondition(NamedTuple):
    """A named predicate ``(history, epoch) -> bool array`` and the metrics it reads.

    ``name`` is what :attr:`fungrad.FitResult.stop_reason` reports when it ends a run.
    """

    name: str
    predicate: Callable[[History, jax.Array], jax.Array]
    metrics: tuple[str, ...] = ()


def _positive_int(name, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def _number(name, value, *, minimum: float | None = None) -> float:
    """``value`` as a finite float (NumPy and concrete JAX scalars included), at least ``minimum``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, (bool, str)) or not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name}: expected a number >= {minimum}, got {value!r}")
    return number


def _metric(value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"metric: expected a metric name such as 'val_loss', got {value!r}")
    return value


# The public factories check and normalise their arguments, then build through a cache: the
# same arguments give the same condition object, so a compiled training program is reused.


def max_epochs(n: int) -> StopCondition:
    """Stop once ``n`` epochs have run."""
    return _max_epochs(_positive_int("n", n))


@functools.cache
def _max_epochs(n: int) -> StopCondition:
    return StopCondition(f"max_epochs({n})", lambda history, epoch: epoch + 1 >= n)


def target(metric: str, threshold: float, mode: str = "min") -> StopCondition:
    """Stop when ``metric`` reaches ``threshold``: ``<=`` for ``mode="min"``, ``>=`` for ``"max"``.

    Example: ``target("val_accuracy", 0.95, mode="max")``, ``target("loss", 1e-3)``.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
    return _target(_metric(metric), _number("threshold", threshold), mode)


@functools.cache
def _target(metric: str, threshold: float, mode: str) -> StopCondition:
    sign = "<=" if mode == "min" else ">="

    def predicate(history, epoch):
        value = history[metric][epoch]
        return value <= threshold if mode == "min" else value >= threshold

    return StopCondition(f"target({metric} {sign} {threshold:g})", predicate, (metric,))


def plateau(metric: str = "loss", tol: float = 1e-4, patience: int = 5) -> StopCondition:
    """Stop when ``metric`` is stationary: ``|m_e - m_{e-1}| <= tol`` for ``patience`` epochs running."""
    return _plateau(
        _metric(metric), _number("tol", tol, minimum=0), _positive_int("patience", patience)
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


def grad_norm_below(tol: float) -> StopCondition:
    """Stop when the epoch's last gradient norm (``history["grad_norm"]``) is below ``tol``.

    With full-batch gradient descent this is ``||grad L(w)|| < tol``: a stationary point.
    """
    return _grad_norm_below(_number("tol", tol, minimum=0))


@functools.cache
def _grad_norm_below(tol: float) -> StopCondition:
    return StopCondition(
        f"grad_norm_below({tol:g})",
        lambda history, epoch: history["grad_norm"][epoch] < tol,
        ("grad_norm",),
    )

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


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def _non_negative(name, value):
    if not (isinstance(value, (int, float)) and value >= 0):
        raise ValueError(f"{name}: expected a number >= 0, got {value!r}")


@functools.cache
def max_epochs(n: int) -> StopCondition:
    """Stop once ``n`` epochs have run."""
    _positive_int("n", n)
    return StopCondition(f"max_epochs({n})", lambda history, epoch: epoch + 1 >= n)


@functools.cache
def target(metric: str, threshold: float, mode: str = "min") -> StopCondition:
    """Stop when ``metric`` reaches ``threshold``: ``<=`` for ``mode="min"``, ``>=`` for ``"max"``.

    Example: ``target("val_accuracy", 0.95, mode="max")``, ``target("loss", 1e-3)``.
    """
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
    sign = "<=" if mode == "min" else ">="

    def predicate(history, epoch):
        value = history[metric][epoch]
        return value <= threshold if mode == "min" else value >= threshold

    return StopCondition(f"target({metric} {sign} {threshold})", predicate, (metric,))


@functools.cache
def plateau(metric: str = "loss", tol: float = 1e-4, patience: int = 5) -> StopCondition:
    """Stop when ``metric`` is stationary: ``|m_e - m_{e-1}| <= tol`` for ``patience`` epochs running."""
    _non_negative("tol", tol)
    _positive_int("patience", patience)

    def predicate(history, epoch):
        values = history[metric]
        index = jnp.clip(epoch - jnp.arange(patience + 1), 0, values.shape[0] - 1)
        changes = jnp.abs(jnp.diff(values[index]))
        return (epoch >= patience) & jnp.all(changes <= tol)

    return StopCondition(
        f"plateau({metric} changed <= {tol} for {patience} epochs)", predicate, (metric,)
    )


@functools.cache
def grad_norm_below(tol: float) -> StopCondition:
    """Stop when the epoch's last gradient norm (``history["grad_norm"]``) is below ``tol``.

    With full-batch gradient descent this is ``||grad L(w)|| < tol``: a stationary point.
    """
    _non_negative("tol", tol)
    return StopCondition(
        f"grad_norm_below({tol})",
        lambda history, epoch: history["grad_norm"][epoch] < tol,
        ("grad_norm",),
    )

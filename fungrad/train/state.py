"""The values a training run carries and returns: one pytree state, and the result types.

A run's whole state is :class:`TrainState`: parameters, optimizer state, the step count and
the base key. Around it the compiled loop carries the per-epoch history, the epoch counter,
a stop code and, with ``keep_best``, the best epoch so far (:class:`BestSoFar`); together
they are a :class:`Carry`, which is exactly what a checkpoint stores to resume bit for bit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

__all__ = ["TrainState", "FitResult", "RestartsResult", "StopTraining"]

DIVERGED = -1
CAP = -2
INTERRUPTED = -3


class TrainState(NamedTuple):
    """Everything a run needs to continue: one pytree, so it jits, vmaps, shards and saves whole.

    ``step`` counts optimizer steps; ``key`` is the run's base key (each epoch shuffles with
    ``fold_in(key, epoch)``).
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


class BestSoFar(NamedTuple):
    """The best epoch so far by the ``keep_best`` metric: its params, 1-based epoch, value."""

    params: Any
    epoch: jax.Array  # 0 until an epoch with a finite value has run
    value: jax.Array


class Carry(NamedTuple):
    """What the compiled loop carries from one epoch to the next."""

    state: TrainState
    history: dict[str, jax.Array]
    epoch: jax.Array
    code: jax.Array
    best: BestSoFar | None = None


class StopTraining(Exception):  # noqa: N818 (named for what it does, like StopIteration)
    """Raise it in a ``fit`` callback to end the run after the current epoch.

    The run ends as if a stop condition had held: the state is saved (with ``checkpoint=``)
    and :func:`fungrad.fit` returns normally, its ``stop_reason`` the exception's message.
    """


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
        params: the trained parameters: with ``keep_best``, those of the best epoch; else the
            last ones (the last finite ones if the run diverged).
        history: per-epoch metrics as NumPy arrays of length ``epochs_run``: ``loss`` (the
            mean of the minibatch losses, each taken before its step), ``grad_norm`` (the norm
            of the epoch's last gradient; for full-batch GD, ``||grad L(w)||``), ``accuracy``
            for classification losses, and ``val_loss``/``val_accuracy`` with validation.
        stop_reason: which stop condition ended the run (or the epoch cap, or divergence).
        epochs_run: how many epochs ran (counting those before a resumed checkpoint).
        state: the final :class:`TrainState`, the one to resume from (the last epoch's, even
            with ``keep_best``).
        best_epoch: with ``keep_best``, the 1-based epoch whose params are ``params`` (0 if
            no epoch had a finite value); else ``None``.
        diverged: whether the run stopped on a non-finite loss or parameters.
    """

    params: Any
    history: dict[str, np.ndarray]
    stop_reason: str
    epochs_run: int
    state: TrainState
    best_epoch: int | None = None
    diverged: bool = False


class RestartsResult(NamedTuple):
    """What :func:`fit_restarts` returns: every run, and the best one.

    Attributes:
        params: every run's params, stacked on a leading run axis (with ``keep_best``, each
            run's best epoch's).
        history: per-epoch metrics, arrays ``(runs, epochs)``, NaN after a run stopped.
        stop_reasons: one reason per run.
        epochs_run: ``(runs,)`` epochs each run trained.
        best_index: the index of the best run by ``metric``; a run whose value is not
            finite (it diverged) never wins unless every run diverged (then it is 0).
        best_params: that run's params.
        metric: the metric the best run was chosen by: with ``keep_best``, each run's best
            epoch's value; else its final value.
        keys: ``(runs,)`` the key each run trained with: run ``r`` equals
            ``fit(params[r], ..., key=keys[r])``.
        state: the final :class:`TrainState` of every run, stacked.
        best_epochs: with ``keep_best``, ``(runs,)`` each run's 1-based best epoch; else None.
        diverged: ``(runs,)`` whether each run diverged.
    """

    params: Any
    history: dict[str, np.ndarray]
    stop_reasons: list[str]
    epochs_run: np.ndarray
    best_index: int
    best_params: Any
    metric: str
    keys: jax.Array
    state: TrainState
    best_epochs: np.ndarray | None = None
    diverged: np.ndarray | None = None

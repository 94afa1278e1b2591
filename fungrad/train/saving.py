"""Checkpoints during training: the carry to a :class:`~fungrad.checkpoint.Checkpoint` and back.

A run saves its whole carry (state, history, epoch, stop code, best epoch) after an epoch
whenever ``save_every`` seconds have passed since the last save, and always after its last
epoch. Resuming rebuilds the carry from the checkpoint, so the run goes on exactly as if it
had never stopped: same shuffles (``fold_in(key, epoch)`` with the epoch read off the step),
same stop decisions (the history is continued), same best epoch.

:mod:`fungrad.checkpoint` sits above training in the package's layering (it stores a
:class:`TrainState`), so it is imported inside the functions that write or read files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fungrad._checks import non_negative_number
from fungrad.train.program import Program
from fungrad.train.state import CAP, BestSoFar, Carry, TrainState


class Saver:
    """Writes checkpoints of a run at most every ``save_every`` seconds, and at its end.

    ``target`` is a path (written with :func:`fungrad.checkpoint.save`) or a callable taking
    the :class:`~fungrad.checkpoint.Checkpoint` (to write more files beside it).
    """

    def __init__(self, target, save_every, config: dict):
        if not (callable(target) or isinstance(target, (str, os.PathLike))):
            raise TypeError(
                "checkpoint: expected a file path or a callable taking a Checkpoint, "
                f"got {type(target).__name__}"
            )
        self.target = target
        self.save_every = non_negative_number("save_every", save_every)
        self.config = config
        self.last = time.monotonic()
        self.saves = 0

    def due(self, final: bool) -> bool:
        return final or time.monotonic() - self.last >= self.save_every

    def save(self, snapshot) -> None:
        """Write ``snapshot`` (a Checkpoint) now."""
        from fungrad import checkpoint

        if callable(self.target):
            self.target(snapshot)
        else:
            checkpoint.save(
                self.target,
                snapshot.state,
                config=snapshot.config,
                history=snapshot.history,
                best=snapshot.best,
                progress=snapshot.progress,
            )
        self.saves += 1
        self.last = time.monotonic()


def snapshot(program: Program, carry: Carry, config: dict, *, runs: bool = False):
    """The carry as a host-side Checkpoint; the history trimmed to the epochs run (one run)."""
    from fungrad import checkpoint

    carry = jax.device_get(carry)
    epoch = np.asarray(carry.epoch)
    if runs:
        history = {name: np.asarray(values) for name, values in carry.history.items()}
    else:
        history = {name: np.asarray(values)[: int(epoch)] for name, values in carry.history.items()}
    best = None
    if carry.best is not None:
        metric, mode = program.keep_best
        best = checkpoint.Best(
            carry.best.params, np.asarray(carry.best.epoch), np.asarray(carry.best.value),
            metric, mode,
        )  # fmt: skip
    progress = {"epoch": epoch, "code": np.asarray(carry.code)}
    return checkpoint.Checkpoint(carry.state, config, history, best, progress)


def restore(path, like: TrainState):
    """Read the checkpoint at ``path`` into the structure of ``like``."""
    from fungrad import checkpoint

    try:
        return checkpoint.restore(path, like=like)
    except checkpoint.CheckpointError as error:
        raise type(error)(f"initial_state: {error} (the run's own state)") from None


def _history(saved: dict, program: Program, dtype, epochs_run, runs: int | None):
    missing = [name for name in program.metrics if name not in saved]
    if missing:
        raise ValueError(
            f"initial_state: the checkpoint records {', '.join(saved) or 'no metrics'}, but "
            f"this run records {', '.join(program.metrics)}; was it saved with other "
            "validation data or another loss?"
        )
    most = int(np.max(epochs_run)) if np.size(epochs_run) else 0
    if most >= program.epochs:
        raise ValueError(
            f"epochs: the checkpoint has already trained {most} epochs and epochs caps the "
            f"total when resuming a checkpoint; pass more than {most}"
        )
    history = {}
    for name in program.metrics:
        values = np.asarray(saved[name], dtype)
        shape = (program.epochs,) if runs is None else (runs, program.epochs)
        full = np.full(shape, np.nan, dtype)
        full[..., : values.shape[-1]] = values[..., : program.epochs]
        history[name] = jnp.asarray(full)
    return history


def _best(saved, program: Program, dtype, state: TrainState) -> BestSoFar | None:
    if program.keep_best is None:
        return None
    metric, mode = program.keep_best
    if saved is None or saved.metric != metric or saved.mode != mode:
        held = "no best epoch" if saved is None else f"the best by {saved.metric} ({saved.mode})"
        raise ValueError(
            f"keep_best: this run keeps the best by {metric} ({mode}), but the checkpoint holds "
            f"{held}; resume with keep_best={None if saved is None else saved.metric!r}"
        )
    return BestSoFar(
        saved.params,
        jnp.asarray(saved.epoch, jnp.int32),
        jnp.asarray(saved.value, dtype),
    )


def resumed_carry(saved, program: Program, dtype, *, runs: int | None = None) -> Carry:
    """The carry that continues ``saved`` (a Checkpoint) under ``program``.

    A stop code other than the epoch cap is kept: a run that stopped on a condition or
    diverged stays stopped. With ``runs``, every field has a leading run axis.
    """
    length = np.asarray(saved.history.get("loss", np.zeros((0,)))).shape[-1]
    epoch = np.asarray(saved.progress.get("epoch", length), np.int32)
    code = np.asarray(saved.progress.get("code", 0), np.int32)
    if runs is not None:
        epoch = np.broadcast_to(epoch, (runs,))
        code = np.broadcast_to(code, (runs,))
    code = np.where(code == CAP, 0, code).astype(np.int32)
    history = _history(saved.history, program, dtype, epoch, runs)
    best = _best(saved.best, program, dtype, saved.state)
    return Carry(saved.state, history, jnp.asarray(epoch), jnp.asarray(code), best)


def fit_config(program: Program, model: dict[str, Any]) -> dict:
    """What a checkpoint written by ``fit(checkpoint=...)`` says about its run."""
    return {
        "fit": {
            **model,
            "batch_size": program.batch_size,
            "epochs": program.epochs,
            "metrics": list(program.metrics),
            "keep_best": None if program.keep_best is None else program.keep_best[0],
            "stop": [s.name for s in program.stops],
        }
    }


SnapshotTarget = str | os.PathLike | Callable[[Any], None]

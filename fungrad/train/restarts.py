"""``fit_restarts``: R runs as one vmapped, compiled program, and the best of them.

Every run trains inside a ``lax.while_loop`` over epochs, vmapped over runs: each run stops on
its own condition while the others go on. Without a checkpoint or callback the whole training
is one call; with them, the loop returns to the host every few epochs (as many as fit in
``save_every`` seconds, or about a second for a callback), which changes nothing in the
numbers: the same compiled body runs the same epochs.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fungrad import parallel, stopping
from fungrad.activations import Activation
from fungrad.losses import Loss
from fungrad.stopping import StopCondition
from fungrad.train import saving, sources
from fungrad.train.epoch import advance, initial_carry, rule_for_params, stop_reason
from fungrad.train.fit import GradientSource, Model, check_like
from fungrad.train.program import build_program, check_optimizer, history_dtype
from fungrad.train.state import DIVERGED, Carry, RestartsResult, StopTraining, TrainState


def _optimizer_for(optimizer, learning_rate):
    return optimizer if learning_rate is None else optimizer(learning_rate)


@functools.partial(jax.jit, static_argnames=("program", "optimizer", "dtype"))
def _init_runs(params, learning_rates, keys, *, program, optimizer, dtype) -> Carry:
    def one_run(params, learning_rate, key):
        opt = rule_for_params(_optimizer_for(optimizer, learning_rate), params)
        state = TrainState(params, opt.init(params), jnp.zeros((), jnp.int32), key)
        return initial_carry(program, state, dtype)

    lr_axis = None if learning_rates is None else 0
    return jax.vmap(one_run, in_axes=(0, lr_axis, 0))(params, learning_rates, keys)


@functools.partial(jax.jit, static_argnames=("program", "optimizer"))
def _train_runs(carry, learning_rates, limit, x, y, validation, *, program, optimizer) -> Carry:
    """Every run up to epoch ``limit`` (traced) or its stop: vmap over a ``while_loop``."""

    def one_run(carry, learning_rate):
        opt = _optimizer_for(optimizer, learning_rate)
        return jax.lax.while_loop(
            lambda c: (c.code == 0) & (c.epoch < limit),
            lambda c: advance(program, opt, c, x, y, validation),
            carry,
        )

    lr_axis = None if learning_rates is None else 0
    return jax.vmap(one_run, in_axes=(0, lr_axis))(carry, learning_rates)


def _stacked(runs: list | tuple):
    """A list of runs' params as one pytree stacked on a leading run axis."""
    try:
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *runs)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"params: every run's params must have the same structure and shapes ({error})"
        ) from None


def _check_learning_rates(learning_rates, optimizer):
    if learning_rates is None:
        check_optimizer(optimizer)
        return None
    learning_rates = jnp.asarray(learning_rates)
    if learning_rates.ndim != 1 or learning_rates.shape[0] == 0:
        raise ValueError(
            f"learning_rates: expected a non-empty 1-D sequence, got shape {learning_rates.shape}"
        )
    if not bool(jnp.all((learning_rates > 0) & jnp.isfinite(learning_rates))):
        raise ValueError(f"learning_rates: expected finite values > 0, got {learning_rates}")
    if not callable(optimizer) or hasattr(optimizer, "update"):
        raise TypeError(
            "optimizer: with learning_rates, expected a factory learning_rate -> "
            "GradientTransformation (e.g. fungrad.optim.sgd), got an optimizer instance"
        )
    return learning_rates


def _check_runs(params, learning_rates, optimizer, layout: str):
    """The params stacked on a run axis and the learning rates, checked; and the run count.

    ``layout`` says what ``params`` are (the gradient source tells): one run's params (they
    then start every run of a ``learning_rates`` grid), a list of runs, or stacked runs.
    """
    learning_rates = _check_learning_rates(learning_rates, optimizer)
    if layout == "list":
        params = _stacked(params)
    elif layout == "one":
        if learning_rates is None:
            raise ValueError(
                "params: got one model's params; expected a list of runs or params stacked "
                "on a leading run axis (or learning_rates, to start every run from these)"
            )
        runs = learning_rates.shape[0]
        params = jax.tree.map(lambda a: jnp.broadcast_to(a, (runs, *jnp.shape(a))), params)
    leaves = jax.tree.leaves(params)
    if not leaves or jnp.ndim(leaves[0]) == 0:
        raise ValueError("params: expected a list of runs or params stacked on a leading run axis")
    runs = leaves[0].shape[0]
    if any(jnp.ndim(leaf) == 0 or leaf.shape[0] != runs for leaf in leaves):
        raise ValueError("params: every leaf must have the same leading run axis")
    if learning_rates is not None and learning_rates.shape[0] != runs:
        raise ValueError(
            f"learning_rates: expected {runs} values, one per run, got {learning_rates.shape[0]}"
        )
    return params, learning_rates, runs


def _spread(mesh, runs, params, keys, learning_rates):
    if mesh is None or parallel.RUNS_AXIS not in mesh.axis_names:
        return params, keys, learning_rates
    devices = mesh.shape[parallel.RUNS_AXIS]
    if runs % devices:
        raise ValueError(
            f"params: {runs} runs cannot be spread evenly over the mesh's {devices} 'runs' "
            f"devices; use a multiple of {devices} runs"
        )
    sharding = parallel.NamedSharding(mesh, parallel.P(parallel.RUNS_AXIS))
    return parallel.place((params, keys, learning_rates), sharding)


def _resume(initial_state, fresh: Carry, program, dtype, runs: int) -> Carry:
    if isinstance(initial_state, (str, os.PathLike)):
        initial_state = saving.restore(initial_state, like=fresh.state)
    if not hasattr(initial_state, "progress"):
        raise TypeError(
            "initial_state: expected a restored fungrad.checkpoint.Checkpoint or a checkpoint "
            f"path, got {type(initial_state).__name__}"
        )
    check_like(initial_state.state, fresh.state, "initial_state")
    carry = saving.resumed_carry(initial_state, program, dtype, runs=runs)
    return jax.tree.map(lambda a, like: jax.device_put(a, like.sharding), carry, fresh)


def _loop(program, optimizer, carry, learning_rates, data, callback, saver, config) -> tuple:
    """Train until every run stops, returning to the host as often as saving asks."""
    chunked = saver is not None or callback is not None
    target = min(saver.save_every if saver else 1.0, 1.0 if callback else np.inf)
    chunk, message = 1, None
    while True:
        begin, before = time.monotonic(), int(np.max(jax.device_get(carry.epoch)))
        limit = before + chunk if chunked else program.epochs
        carry = _train_runs(
            carry, learning_rates, jnp.int32(limit), *data, program=program, optimizer=optimizer
        )
        codes, epochs = jax.device_get((carry.code, carry.epoch))
        done = bool(np.all(codes != 0))
        if callback is not None:
            latest = jax.device_get(
                {n: v[np.arange(len(epochs)), np.maximum(epochs - 1, 0)]
                 for n, v in carry.history.items()}
            )  # fmt: skip
            try:
                callback(int(np.max(epochs)) - 1, latest)
            except StopTraining as stop:
                message = str(stop) or f"stopped by the callback after epoch {np.max(epochs)}"
        if saver is not None and saver.due(done or message is not None):
            saver.save(saving.snapshot(program, carry, config, runs=True))
        if done or message is not None:
            return carry, message
        per_epoch = (time.monotonic() - begin) / max(int(np.max(epochs)) - before, 1)
        chunk = int(max(1, min(target / max(per_epoch, 1e-9), program.epochs)))


def _select_metric(program, select, mode) -> tuple[str, str]:
    """The metric runs are ranked by and its direction, checked before anything trains."""
    default = "val_loss" if "val_loss" in program.metrics else "loss"
    metric = select or (program.keep_best[0] if program.keep_best else default)
    if metric not in program.metrics:
        raise ValueError(
            f"select: {metric!r} is not recorded; recorded metrics: {', '.join(program.metrics)}"
        )
    return metric, stopping.direction(metric, mode)


def rank_runs(history, epochs_run, best_epochs, metric: str, mode: str) -> int:
    """The best run: by ``metric`` at each run's best epoch (if kept) or its last epoch.

    A run whose figure is not finite never wins unless no run has a finite one (then 0).
    """
    epochs_run = np.asarray(epochs_run)
    at = epochs_run - 1
    if best_epochs is not None:
        best_epochs = np.asarray(best_epochs)
        at = np.where(best_epochs > 0, best_epochs - 1, at)
    figures = np.asarray(history[metric])[np.arange(len(at)), np.maximum(at, 0)]
    score = np.where(np.isfinite(figures), figures if mode == "min" else -figures, np.inf)
    return int(np.argmin(score))


def _rank(carry: Carry, history, metric: str, mode: str) -> int:
    best_epochs = None if carry.best is None else carry.best.epoch
    return rank_runs(history, carry.epoch, best_epochs, metric, mode)


def fit_restarts(
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    loss: str | Loss,
    optimizer: optax.GradientTransformation | Callable[[Any], optax.GradientTransformation],
    epochs: int,
    key: jax.Array,
    learning_rates: Sequence[float] | jax.Array | None = None,
    batch_size: int | None = None,
    model: Model | None = None,
    activation: str | Activation | None = None,
    output_activation: str | Activation | None = None,
    gradients: GradientSource | None = None,
    stop: StopCondition | Sequence[StopCondition] | None = None,
    validation: tuple[jax.Array, jax.Array] | None = None,
    select: str | None = None,
    mode: str | None = None,
    mesh: jax.sharding.Mesh | None = None,
    keep_best: str | None = None,
    callback: Callable[[int, dict[str, np.ndarray]], None] | None = None,
    initial_state: Any = None,
    checkpoint: saving.SnapshotTarget | None = None,
    save_every: float = 10.0,
) -> RestartsResult:
    """Train R runs as one vmapped, compiled program and pick the best.

    Gradient descent depends on the initial weights and the step size, so run it several
    times and keep the best. Run ``r`` starts from ``params[r]`` with learning rate
    ``learning_rates[r]`` and key ``keys[r] = jax.random.split(key, R)[r]``; it trains inside a
    ``lax.while_loop`` and stops on its own condition, while the others go on. The result of
    run ``r`` equals ``fit(params[r], ..., optimizer=optimizer(learning_rates[r]),
    key=keys[r])``. Arguments not listed below are as in :func:`fit`.

    Args:
        params: a list of R initial params, or one pytree stacked on a leading run axis
            (e.g. ``jax.vmap(lambda k: mlp.init(k, sizes))(keys)``). With ``learning_rates``
            and one model's params (unstacked), they start every run. Which of these
            ``params`` are is read off the MLP layout, or for ``model`` off whether the model
            applies to ``params`` (one run) or to ``params[0]`` (a list of runs), by
            ``jax.eval_shape``.
        model: any pure ``model(params, x) -> y_hat``, as in :func:`fit`.
        optimizer: a ``GradientTransformation``; with ``learning_rates``, a factory
            ``learning_rate -> GradientTransformation`` (``fungrad.optim.sgd``, ``optax.adam``,
            ``functools.partial(fungrad.optim.momentum, beta=0.9)``); the learning rate is then
            a traced value, so a new grid does not recompile the step.
        learning_rates: R learning rates, one per run.
        select: the metric the best run is chosen by; default the ``keep_best`` metric, else
            ``val_loss`` with validation, else ``loss``. Each run's figure is its value at the
            run's best epoch (with ``keep_best``) or its last epoch.
        mode: ``"min"`` or ``"max"``; default from the metric's name (``"max"`` for accuracies).
        mesh: a ``jax.sharding.Mesh`` with a ``"runs"`` axis spreads the runs over its devices
            (the number of runs must be a multiple of its size), and/or a ``"data"`` axis
            splits each minibatch over its devices, as in :func:`fit`. Its axes may be
            ``Auto`` or ``Explicit`` (``jax.make_mesh((2, 2), ("runs", "data"))``); the
            result's arrays live on this mesh.
        keep_best: as in :func:`fit`, for each run on its own.
        callback: called on the host each time the loop returns (about once a second) as
            ``callback(epoch, metrics)``: the furthest epoch any run has finished (0-based)
            and each run's latest metrics as ``(R,)`` arrays. It may raise
            :class:`fungrad.StopTraining` to end every run.
        initial_state: a checkpoint path or restored Checkpoint written by a
            ``fit_restarts(checkpoint=...)`` with the same runs: every run goes on where it
            was saved; ``epochs`` caps the total.
        checkpoint: as in :func:`fit`; the checkpoint holds every run.
        save_every: as in :func:`fit`.

    Returns:
        A :class:`RestartsResult`.
    """
    source = sources.resolve(
        loss, model=model, gradients=gradients, activation=activation,
        output_activation=output_activation,
    )  # fmt: skip
    view = None if mesh is None else parallel.auto_view(mesh)
    if view is not None:  # the caller's callbacks run in the caller's mesh context
        callback, checkpoint = map(parallel.in_caller_context, (callback, checkpoint))
    with parallel.mesh_context(view):
        if view is not None:  # arrays the caller placed on its own (Explicit) mesh
            params, x, y, validation, key, learning_rates, initial_state = parallel.on_mesh(
                (params, x, y, validation, key, learning_rates, initial_state), view
            )
        x = jnp.asarray(x)
        params, learning_rates, runs = _check_runs(
            params, learning_rates, optimizer, source.layout(params, x)
        )
        first = jax.tree.map(lambda a: a[0], params)
        program, x, y, validation = build_program(
            first, x, y, source=source, epochs=epochs, batch_size=batch_size, stop=stop,
            validation=validation, keep_best=keep_best, mesh=view,
            mesh_axes=(parallel.DATA_AXIS, parallel.RUNS_AXIS),
        )  # fmt: skip
        metric, mode = _select_metric(program, select, mode)
        config = saving.fit_config(program, source.describe(first))
        saver = None if checkpoint is None else saving.Saver(checkpoint, save_every, config)
        keys = jax.random.split(key, runs)
        params, keys, learning_rates = _spread(view, runs, params, keys, learning_rates)
        dtype = jnp.dtype(history_dtype(first))
        carry = _init_runs(
            params, learning_rates, keys, program=program, optimizer=optimizer, dtype=dtype
        )
        if initial_state is not None:
            carry = _resume(initial_state, carry, program, dtype, runs)
        data = (x, y, validation)
        carry, message = _loop(
            program, optimizer, carry, learning_rates, data, callback, saver, config
        )
        result = _result(program, carry, message, keys, metric, mode)
    # Computed on the mesh's Auto view; handed back on the caller's own mesh.
    return result if mesh is None else parallel.on_mesh(result, mesh)


def _result(program, carry: Carry, message, keys, metric: str, mode: str) -> RestartsResult:
    """The finished runs as a :class:`RestartsResult`, the best one picked by ``metric``."""
    codes, epochs_run = np.asarray(carry.code), np.asarray(carry.epoch)
    history = {name: np.asarray(values) for name, values in carry.history.items()}
    best = _rank(carry, history, metric, mode)
    reasons = [
        message if (message and c == 0) else stop_reason(program, int(c), int(e))
        for c, e in zip(codes, epochs_run, strict=True)
    ]
    trained = carry.state.params if carry.best is None else carry.best.params
    best_epochs = None if carry.best is None else np.asarray(carry.best.epoch)
    return RestartsResult(
        trained, history, reasons, epochs_run, best, jax.tree.map(lambda a: a[best], trained),
        metric, keys, carry.state, best_epochs, codes == DIVERGED,
    )  # fmt: skip

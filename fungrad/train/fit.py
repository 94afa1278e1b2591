"""``fit``: one run, one compiled epoch per call, checkpointed as it goes."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fungrad import parallel
from fungrad.activations import Activation
from fungrad.losses import Loss
from fungrad.optim import is_low_precision
from fungrad.stopping import StopCondition
from fungrad.train import saving, sources
from fungrad.train.epoch import advance_compiled, initial_carry, rule_for_params, stop_reason
from fungrad.train.program import Program, build_program, check_optimizer, history_dtype
from fungrad.train.state import DIVERGED, Carry, FitResult, StopTraining, TrainState

GradientSource = str | Callable[..., tuple[jax.Array, Any]]
Model = Callable[[Any, jax.Array], jax.Array]


def _mismatch_hint(leaf, template) -> str:
    if tuple(jnp.shape(leaf)) != tuple(template.shape):
        return "another architecture?"
    if is_low_precision(leaf) and template.dtype == jnp.float32:
        return (
            "bfloat16 and float16 params keep float32 optimizer statistics: build the state "
            "with fungrad.optim.mixed_precision(optimizer).init(params)"
        )
    return "another dtype?"


def check_like(state, like, argname: str) -> None:
    """Raise unless ``state`` has the structure, shapes and dtypes of ``like``."""
    got, want = jax.tree.structure(state), jax.tree.structure(like)
    if got != want:
        raise ValueError(
            f"{argname}: its state has another structure than this run's (another "
            f"architecture or optimizer?): {got.num_leaves} leaves, expected {want.num_leaves}"
        )
    pairs = zip(jax.tree.leaves_with_path(state), jax.tree.leaves(like), strict=True)
    for (path, leaf), template in pairs:
        shape, dtype = tuple(jnp.shape(leaf)), getattr(leaf, "dtype", None)
        if shape != tuple(template.shape) or dtype != template.dtype:
            raise ValueError(
                f"{argname}: leaf {jax.tree_util.keystr(path)} is {dtype}{shape}, expected "
                f"{template.dtype}{tuple(template.shape)} ({_mismatch_hint(leaf, template)})"
            )


def _fresh_state(optimizer, params, key) -> TrainState:
    """A new run's state: ``params``, the optimizer's initial state, step 0, ``key``."""
    opt_state = rule_for_params(optimizer, params).init(params)
    return TrainState(params, opt_state, jnp.zeros((), jnp.int32), key)


@functools.partial(jax.jit, static_argnames=("program", "optimizer", "dtype"))
def _fresh_carry(params, key, *, program: Program, optimizer, dtype) -> Carry:
    """A new run's carry as one compiled call: its optimizer state, empty history and best."""
    return initial_carry(program, _fresh_state(optimizer, params, key), dtype)


def _start(program: Program, params, optimizer, key, initial_state, mesh) -> Carry:
    """The carry to start from: fresh, a TrainState's, or a checkpoint's (path or restored).

    A resumed run's template is built with ``jax.eval_shape``: nothing is computed (or
    compiled) for a state that the checkpoint replaces.
    """
    params = jax.tree.map(jnp.asarray, params)

    def fresh_state(p):
        return _fresh_state(optimizer, p, key)

    dtype = history_dtype(params)
    if initial_state is None:
        carry = _fresh_carry(params, key, program=program, optimizer=optimizer, dtype=dtype)
    elif isinstance(initial_state, TrainState):
        check_like(initial_state, jax.eval_shape(fresh_state, params), "initial_state")
        carry = initial_carry(program, initial_state, dtype)
    else:
        like = jax.eval_shape(fresh_state, params)
        if isinstance(initial_state, (str, os.PathLike)):
            initial_state = saving.restore(initial_state, like=like)
        if not hasattr(initial_state, "progress"):
            raise TypeError(
                "initial_state: expected a TrainState, a restored fungrad.checkpoint.Checkpoint "
                f"or a checkpoint path, got {type(initial_state).__name__}"
            )
        if initial_state.state.opt_state is None and like.opt_state is not None:
            raise ValueError(
                "initial_state: this checkpoint was restored without a template, so its "
                "optimizer state is missing; pass the checkpoint's path as initial_state"
            )
        check_like(initial_state.state, like, "initial_state")
        carry = saving.resumed_carry(initial_state, program, dtype)
    if mesh is not None:
        carry = parallel.place(carry, parallel.replicated(mesh))
    return carry


def _loop(program, optimizer, carry, data, callback, saver, config):
    """The host loop: one compiled epoch per call until a stop; returns (carry, message)."""
    code, message = int(carry.code), None
    for epoch in range(int(carry.epoch), program.epochs if code == 0 else 0):
        carry = advance_compiled(carry, *data, program=program, optimizer=optimizer)
        code, metrics = jax.device_get(
            (carry.code, {name: values[epoch] for name, values in carry.history.items()})
        )
        if callback is not None:
            try:
                callback(epoch, {name: float(value) for name, value in metrics.items()})
            except StopTraining as stop:
                message = str(stop) or f"stopped by the callback after epoch {epoch + 1}"
        final = code != 0 or message is not None
        if saver is not None and saver.due(final):
            saver.save(saving.snapshot(program, carry, config))
        if final:
            break
    return carry, message


def _result(program: Program, carry: Carry, message: str | None, on_divergence: str) -> FitResult:
    """The finished run: its params (the best epoch's with ``keep_best``), history and reason."""
    epochs_run, code = int(carry.epoch), int(carry.code)
    history = {name: np.asarray(values[:epochs_run]) for name, values in carry.history.items()}
    reason = message or stop_reason(program, code, epochs_run)
    if code == DIVERGED and on_divergence == "raise":
        raise FloatingPointError(reason)
    params, best_epoch = carry.state.params, None
    if carry.best is not None:
        params, best_epoch = carry.best.params, int(carry.best.epoch)
    return FitResult(params, history, reason, epochs_run, carry.state, best_epoch, code == DIVERGED)


def fit(
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    loss: str | Loss,
    optimizer: optax.GradientTransformation,
    epochs: int,
    key: jax.Array,
    batch_size: int | None = None,
    model: Model | None = None,
    activation: str | Activation | None = None,
    output_activation: str | Activation | None = None,
    gradients: GradientSource | None = None,
    stop: StopCondition | Sequence[StopCondition] | None = None,
    validation: tuple[jax.Array, jax.Array] | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    on_divergence: str = "stop",
    initial_state: Any = None,
    mesh: jax.sharding.Mesh | None = None,
    keep_best: str | None = None,
    checkpoint: saving.SnapshotTarget | None = None,
    save_every: float = 10.0,
) -> FitResult:
    """Train by minimising the mean loss with ``optimizer``, one compiled epoch at a time.

    The objective of a batch is the weighted mean of the per-sample loss,
    ``L(w) = sum_i v_i l(F(x_i; w), y_i) / sum_i v_i``, with ``F = model`` (an MLP when
    ``model`` is left out) and weights ``v_i = 1``, or 0 for the padding rows of a last partial
    batch. Each step computes ``(L, g)`` by the ``gradients`` source and applies
    ``w <- w + optimizer.update(g)``. ``batch_size=None`` is full-batch gradient descent (one
    step per epoch); otherwise every epoch shuffles on the device and visits each sample once.

    Args:
        params: initial parameters: an MLP's layer list (:func:`fungrad.mlp.init`), or any
            pytree of float arrays that ``model`` (or a ``gradients`` callable) takes.
        x: inputs, one row per sample: ``(n_samples, n_in)`` for an MLP, any
            ``(n_samples, ...)`` that ``model`` takes.
        y: targets, as the loss takes them, checked against the model's output shape.
        loss: a loss name or :class:`fungrad.Loss`.
        optimizer: any ``optax.GradientTransformation`` (see :mod:`fungrad.optim`).
        epochs: the most epochs to run (always a cap). Resuming a checkpoint, the cap counts
            the epochs already in it.
        key: PRNG key for shuffling.
        batch_size: minibatch size, or ``None`` for the full batch.
        model: any pure function ``model(params, x) -> y_hat`` taking a batch ``x`` and
            returning one output row ``(batch, k)`` per sample; left out, ``params`` are an
            MLP's. The same function object with the same settings reuses the compiled
            program. Its output shape is read with ``jax.eval_shape`` (nothing is computed)
            to check ``y``.
        activation: hidden activation of the MLP (default ``"relu"``); MLP only.
        output_activation: output activation of the MLP (default ``"identity"``); MLP only.
        gradients: where ``(L, g)`` comes from: ``"backprop"`` (the MLP engine; MLPs only, the
            default for them), ``"graph"`` (the general engine, :mod:`fungrad.graph`, on the
            computational graph of the objective; any model, the default with ``model``),
            ``"jax"`` (``jax.value_and_grad`` of the same objective; ``"autodiff"`` is an alias),
            or a callable ``(params, x, y) -> (loss, grads)`` computing everything itself (it may
            also accept ``weights=``, the per-sample weights of a padded last batch).
        stop: a condition from :mod:`fungrad.stopping`, or a list; the first that holds ends
            the run.
        validation: ``(x_val, y_val)`` evaluated after each epoch (``val_`` metrics).
        callback: called on the host after each epoch as ``callback(epoch, metrics)``; it may
            raise :class:`fungrad.StopTraining` to end the run after this epoch.
        on_divergence: ``"stop"`` (end the run, keep the last finite params) or ``"raise"``.
        initial_state: where to continue from: a checkpoint's path, or a restored
            :class:`fungrad.checkpoint.Checkpoint` (the run goes on exactly where it was saved:
            history, best epoch and stop decisions continue; ``epochs`` caps the total), or a
            bare :class:`TrainState` (a new history of up to ``epochs`` more epochs).
            ``params`` then only fixes the structure.
        mesh: a ``jax.sharding.Mesh`` with a ``"data"`` axis for data-parallel training: each
            minibatch is split over that axis, params and optimizer state are replicated (see
            :mod:`fungrad.parallel`). ``batch_size`` must be a multiple of the axis size. Its
            axes may be ``Auto`` or ``Explicit`` (``jax.make_mesh((4,), ("data",))``); the
            result's arrays live on this mesh.
        keep_best: a recorded metric (e.g. ``"val_loss"``): the result's params are those of
            the epoch where it was best (``max`` for accuracies, else ``min``); tracked inside
            the compiled loop. The state to resume from is still the last one.
        checkpoint: a file path: the whole run (state, history, best epoch) is saved there
            atomically during training and after its last epoch; or a callable that takes
            the :class:`fungrad.checkpoint.Checkpoint` and writes it itself.
        save_every: with ``checkpoint``, save after an epoch once at least this many seconds
            have passed since the last save (``0``: after every epoch).

    Returns:
        A :class:`FitResult`.

    Raises:
        ValueError, TypeError: on bad data, shapes, names or settings.
        FloatingPointError: if the run diverges and ``on_divergence="raise"``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from fungrad import mlp, optim
        >>> x = jnp.linspace(-1, 1, 32)[:, None]
        >>> result = fit(mlp.init(jax.random.key(0), [1, 8, 1]), x, 2 * x, loss="l2",
        ...              optimizer=optim.gd(0.1), epochs=50, key=jax.random.key(1))
        >>> result.epochs_run
        50

        Any model, by the general engine:

        >>> def line(p, x):
        ...     return x * p["slope"] + p["intercept"]
        >>> result = fit({"slope": jnp.zeros(1), "intercept": jnp.zeros(1)}, x, 2 * x + 1,
        ...              model=line, loss="l2", optimizer=optim.gd(0.2), epochs=100,
        ...              key=jax.random.key(1))
        >>> round(float(result.params["slope"][0]), 3), round(float(result.params["intercept"][0]), 3)
        (2.0, 1.0)
    """
    if on_divergence not in ("stop", "raise"):
        raise ValueError(f"on_divergence: expected 'stop' or 'raise', got {on_divergence!r}")
    check_optimizer(optimizer)
    source = sources.resolve(
        loss, model=model, gradients=gradients, activation=activation,
        output_activation=output_activation,
    )  # fmt: skip
    view = None if mesh is None else parallel.auto_view(mesh)
    if view is not None:  # the caller's callbacks run in the caller's mesh context
        callback, checkpoint = map(parallel.in_caller_context, (callback, checkpoint))
    with parallel.mesh_context(view):
        if view is not None:  # arrays the caller placed on its own (Explicit) mesh
            params, x, y, validation, key, initial_state = parallel.on_mesh(
                (params, x, y, validation, key, initial_state), view
            )
        program, x, y, validation = build_program(
            params, x, y, source=source, epochs=epochs, batch_size=batch_size, stop=stop,
            validation=validation, keep_best=keep_best, mesh=view,
        )  # fmt: skip
        config = saving.fit_config(program, source.describe(params))
        saver = None if checkpoint is None else saving.Saver(checkpoint, save_every, config)
        carry = _start(program, params, optimizer, key, initial_state, view)
        data = (x, y, validation)
        carry, message = _loop(program, optimizer, carry, data, callback, saver, config)
        result = _result(program, carry, message, on_divergence)
    # Computed on the mesh's Auto view; handed back on the caller's own mesh.
    return result if mesh is None else parallel.on_mesh(result, mesh)

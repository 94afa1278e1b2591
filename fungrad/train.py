"""The optimization loop, compiled: ``fit`` for one run, ``fit_restarts`` for many at once.

Training minimises ``L(w) = 1/N sum_i l(F(x_i; w), y_i)``. Each epoch is one jitted call: the
data are shuffled on the device with a key derived from the run's key and the epoch, cut into
minibatches of a static size (a last partial batch is padded and masked with zero weights, so
every sample is visited exactly once and nothing recompiles), and a ``lax.scan`` runs the
steps ``w <- update(w, grad L_batch(w))``. After the epoch the loop records the metrics in a
fixed-size history and asks the stop conditions whether to go on.

The same epoch body runs inside ``lax.while_loop`` for :func:`fit_restarts`, vmapped over runs:
each run stops on its own condition while the others go on.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from fungrad import backprop, mlp, parallel
from fungrad.activations import Activation, get_activation
from fungrad.losses import Loss, get_loss, prepare_targets, zero_one
from fungrad.stopping import StopCondition

__all__ = ["TrainState", "FitResult", "RestartsResult", "fit", "fit_restarts", "evaluate"]

GradientSource = str | Callable[..., tuple[jax.Array, Any]]

_DIVERGED = -1
_CAP = -2


class TrainState(NamedTuple):
    """Everything a run needs to continue: one pytree, so it jits, vmaps, shards and saves whole.

    ``step`` counts optimizer steps; ``key`` is the run's base key (each epoch shuffles with
    ``fold_in(key, epoch)``).
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


class FitResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
        params: the trained parameters (the last finite ones if the run diverged).
        history: per-epoch metrics as NumPy arrays of length ``epochs_run``: ``loss`` (the
            mean of the minibatch losses, each taken before its step), ``grad_norm`` (the norm
            of the epoch's last gradient; for full-batch GD, ``||grad L(w)||``), ``accuracy``
            for classification losses, and ``val_loss``/``val_accuracy`` with validation.
        stop_reason: which stop condition ended the run (or the epoch cap, or divergence).
        epochs_run: how many epochs ran.
        state: the final :class:`TrainState` (for checkpoints and resuming).
    """

    params: Any
    history: dict[str, np.ndarray]
    stop_reason: str
    epochs_run: int
    state: TrainState


class RestartsResult(NamedTuple):
    """What :func:`fit_restarts` returns: every run, and the best one.

    Attributes:
        params: every run's final params, stacked on a leading run axis.
        history: per-epoch metrics, arrays ``(runs, epochs)``, NaN after a run stopped.
        stop_reasons: one reason per run.
        epochs_run: ``(runs,)`` epochs each run trained.
        best_index: the index of the best run by ``metric``; a run whose final value is not
            finite (it diverged) never wins unless every run diverged (then it is 0).
        best_params: that run's params.
        metric: the metric the best run was chosen by (its final value).
        keys: ``(runs,)`` the key each run trained with: run ``r`` equals
            ``fit(params[r], ..., key=keys[r])``.
        state: the final :class:`TrainState` of every run, stacked.
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


class _Carry(NamedTuple):
    state: TrainState
    history: dict[str, jax.Array]
    epoch: jax.Array
    code: jax.Array


class _Program(NamedTuple):
    """The static description of a run: everything except the arrays."""

    grad_fn: Callable  # (params, x, y, weights) -> (loss, grads, y_hat or None)
    eval_fn: Callable  # (params, x, y) -> dict of metrics
    n: int
    batch_size: int | None
    epochs: int
    stops: tuple[StopCondition, ...]
    metrics: tuple[str, ...]
    batch_sharding: Any = None  # NamedSharding of a minibatch under a "data" mesh

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.batch_size is None else -(-self.n // self.batch_size)


# --------------------------------------------------------------------------- gradient sources


@functools.cache
def _mlp_sources(loss: Loss, hidden: Activation, output: Activation, gradients: str):
    def model(params, x):
        return mlp.apply(params, x, activation=hidden, output_activation=output)

    def backprop_source(params, x, y, weights):
        return backprop.value_grad_and_output(
            params, x, y, activation=hidden, output_activation=output, loss=loss, weights=weights
        )

    def autodiff_source(params, x, y, weights):
        def objective(p):
            y_hat = model(p, x)
            per_sample = loss.fn(y_hat, y)
            return jnp.sum(per_sample * weights) / jnp.sum(weights), y_hat

        (value, y_hat), grads = jax.value_and_grad(objective, has_aux=True)(params)
        return value, grads, y_hat

    def eval_fn(params, x, y):
        y_hat = model(params, x)
        metrics = {"loss": jnp.mean(loss.fn(y_hat, y))}
        if loss.classification:
            metrics["accuracy"] = 1 - jnp.mean(zero_one(y_hat, y))
        return metrics

    grad_fn = backprop_source if gradients == "backprop" else autodiff_source
    return grad_fn, eval_fn


@functools.cache
def _callable_source(gradients: Callable):
    try:
        takes_weights = "weights" in inspect.signature(gradients).parameters
    except (TypeError, ValueError):
        takes_weights = False

    def grad_fn(params, x, y, weights):
        if takes_weights:
            value, grads = gradients(params, x, y, weights=weights)
        else:
            value, grads = gradients(params, x, y)
        return value, grads, None

    def eval_fn(params, x, y):
        if takes_weights:
            return {"loss": gradients(params, x, y, weights=jnp.ones((x.shape[0],), x.dtype))[0]}
        return {"loss": gradients(params, x, y)[0]}

    return grad_fn, eval_fn, takes_weights


# --------------------------------------------------------------------------- one epoch


def _tree_where(condition, new, old):
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), new, old)


def _norm(tree) -> jax.Array:
    """The Euclidean norm of all the leaves of ``tree`` taken together."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)))


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _run_epoch(program: _Program, optimizer, state: TrainState, x, y):
    """One pass over the data; returns the new state and the epoch's metrics."""
    n = program.n

    def step(state, batch):
        indices, weights, last = batch
        x_batch = x if indices is None else jnp.take(x, indices, axis=0)
        y_batch = y if indices is None else jnp.take(y, indices, axis=0)
        if program.batch_sharding is not None:
            x_batch, y_batch, weights = jax.lax.with_sharding_constraint(
                (x_batch, y_batch, weights), program.batch_sharding
            )
        value, grads, y_hat = program.grad_fn(state.params, x_batch, y_batch, weights)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        count = jnp.sum(weights)
        # The norm of the epoch's last gradient only: a norm every step would read all the
        # gradients once more per step, which at small batches costs as much as a tenth of it.
        grad_norm = jax.lax.cond(last, _norm, lambda g: jnp.zeros((), value.dtype), grads)
        metrics = {"loss": value * count, "grad_norm": grad_norm.astype(value.dtype)}
        if "accuracy" in program.metrics:
            wrong = zero_one(y_hat, y_batch)
            metrics["accuracy"] = jnp.sum((1 - wrong) * weights)
        return TrainState(params, opt_state, state.step + 1, state.key), metrics

    if program.batch_size is None:
        state, metrics = step(state, (None, jnp.ones((n,), x.dtype), True))
        metrics = jax.tree.map(lambda m: m[None], metrics)
    else:
        size, steps = program.batch_size, program.steps_per_epoch
        epoch = state.step // steps
        order = jax.random.permutation(jax.random.fold_in(state.key, epoch), n)
        pad = steps * size - n
        indices = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(steps, size)
        weights = jnp.concatenate([jnp.ones((n,), x.dtype), jnp.zeros((pad,), x.dtype)])
        last = jnp.arange(steps) == steps - 1
        batches = (indices, weights.reshape(steps, size), last)
        state, metrics = jax.lax.scan(step, state, batches)
    summary = {"loss": jnp.sum(metrics["loss"]) / n, "grad_norm": metrics["grad_norm"][-1]}
    if "accuracy" in metrics:
        summary["accuracy"] = jnp.sum(metrics["accuracy"]) / n
    return state, summary


def _advance(program: _Program, optimizer, carry: _Carry, x, y, validation) -> _Carry:
    """Run one epoch, record its metrics, and set ``code`` if the run must stop."""
    new_state, metrics = _run_epoch(program, optimizer, carry.state, x, y)
    if validation is not None:
        for name, value in program.eval_fn(new_state.params, *validation).items():
            metrics["val_" + name] = value
    finite = jnp.isfinite(metrics["loss"]) & _all_finite(new_state.params)
    state = _tree_where(finite, new_state, carry.state)
    epoch = carry.epoch
    history = {
        name: values.at[epoch].set(metrics[name].astype(values.dtype))
        for name, values in carry.history.items()
    }
    code = jnp.where(epoch + 1 >= program.epochs, _CAP, 0)
    for i in reversed(range(len(program.stops))):
        code = jnp.where(program.stops[i].predicate(history, epoch), i + 1, code)
    code = jnp.where(finite, code, _DIVERGED).astype(jnp.int32)
    return _Carry(state, history, epoch + 1, code)


# The compiled epoch is cached on the static program and optimizer: a second fit with the same
# settings and data shapes (new data values, a restored state) reuses it.
_advance_compiled = jax.jit(
    lambda carry, x, y, validation, *, program, optimizer: _advance(
        program, optimizer, carry, x, y, validation
    ),
    static_argnames=("program", "optimizer"),
)


def _initial_carry(program: _Program, state: TrainState, dtype) -> _Carry:
    history = {name: jnp.full((program.epochs,), jnp.nan, dtype) for name in program.metrics}
    return _Carry(state, history, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def _stop_reason(program: _Program, code: int, epochs_run: int) -> str:
    if code == _DIVERGED:
        return (
            f"diverged: non-finite loss or parameters in epoch {epochs_run}; "
            "kept the parameters of the last finite epoch"
        )
    if code == _CAP:
        return f"epochs: reached the cap of {program.epochs} epochs"
    return program.stops[code - 1].name


# --------------------------------------------------------------------------- checking inputs


def _as_stops(stop) -> tuple[StopCondition, ...]:
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, StopCondition) else tuple(stop)
    for s in stops:
        if not isinstance(s, StopCondition):
            raise TypeError(
                "stop: expected a fungrad.stopping condition or a list of them, "
                f"got {type(s).__name__}"
            )
    return stops


def _check_data(names: tuple[str, str], x, y, params, loss: Loss, is_mlp: bool):
    """Check inputs and targets; ``names`` are what errors call them, e.g. ``("x", "y")``."""
    x_name, y_name = names
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{x_name}: expected a non-empty batch of samples, got shape {x.shape}")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{y_name}: expected {x.shape[0]} rows to match {x_name}, got shape {y.shape}"
        )
    if jnp.issubdtype(x.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{x_name}: contains NaN or infinity")
    if is_mlp:
        x = mlp.check_input(params, x, argname=x_name)
        if x.ndim != 2:
            raise ValueError(f"{x_name}: expected a batch (n_samples, n_in), got shape {x.shape}")
        y = prepare_targets(loss, y, (x.shape[0], mlp.layer_sizes(params)[-1]), argname=y_name)
    if jnp.issubdtype(y.dtype, jnp.floating) and not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError(f"{y_name}: contains NaN or infinity")
    return x, y


def _build_program(
    params,
    x,
    y,
    *,
    loss,
    epochs,
    batch_size,
    activation,
    output_activation,
    gradients,
    stop,
    validation,
    mesh=None,
    mesh_axes=(parallel.DATA_AXIS,),
):
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs: expected a positive integer, got {epochs!r}")
    loss = get_loss(loss)
    hidden = get_activation(activation)
    output = get_activation(output_activation, argname="output_activation")
    takes_weights = True
    if callable(gradients):
        grad_fn, eval_fn, takes_weights = _callable_source(gradients)
        is_mlp = False
    elif gradients in ("backprop", "autodiff"):
        mlp.check_params(params)
        grad_fn, eval_fn = _mlp_sources(loss, hidden, output, gradients)
        is_mlp = True
    else:
        raise ValueError(
            "gradients: expected 'backprop', 'autodiff' or a callable "
            f"(params, x, y) -> (loss, grads), got {gradients!r}"
        )
    x, y = _check_data(("x", "y"), x, y, params, loss, is_mlp)
    n = x.shape[0]
    if batch_size is not None and (
        not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= n
    ):
        raise ValueError(f"batch_size: expected None or an integer in [1, {n}], got {batch_size!r}")
    if batch_size is not None and n % batch_size and not takes_weights:
        raise ValueError(
            f"batch_size: {n} samples leave a partial last batch of {n % batch_size}, which is "
            "masked with per-sample weights, but the gradients callable takes no `weights` "
            "argument; accept weights=... or choose a batch_size that divides the data"
        )
    metrics = ["loss", "grad_norm"] + (["accuracy"] if is_mlp and loss.classification else [])
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError("validation: expected a pair (x_val, y_val)")
        validation = _check_data(
            ("validation[0]", "validation[1]"), *validation, params, loss, is_mlp
        )
        metrics += ["val_" + m for m in metrics if m != "grad_norm"]
    stops = _as_stops(stop)
    for s in stops:
        missing = [m for m in s.metrics if m not in metrics]
        if missing:
            raise ValueError(
                f"stop: {s.name} reads {', '.join(missing)}, which this run does not record; "
                f"recorded metrics: {', '.join(metrics)}"
            )
    batch_sharding = None
    if mesh is not None:
        parallel.check_mesh(mesh, batch=batch_size or n, axes=mesh_axes)
        if parallel.DATA_AXIS in mesh.axis_names:
            batch_sharding = parallel.batch_sharded(mesh)
        x, y, validation = parallel.place((x, y, validation), parallel.replicated(mesh))
    else:
        x, y, validation = jax.device_put((x, y, validation))
    program = _Program(
        grad_fn, eval_fn, n, batch_size, epochs, stops, tuple(metrics), batch_sharding
    )
    return program, x, y, validation


def _check_optimizer(optimizer):
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            "optimizer: expected an optax.GradientTransformation (e.g. fungrad.optim.sgd(0.1)), "
            f"got {type(optimizer).__name__}"
        )


def _history_dtype(params):
    leaves = [leaf for leaf in jax.tree.leaves(params) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return jnp.result_type(*leaves) if leaves else jnp.float32


# --------------------------------------------------------------------------- fit


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
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
    gradients: GradientSource = "backprop",
    stop: StopCondition | Sequence[StopCondition] | None = None,
    validation: tuple[jax.Array, jax.Array] | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    on_divergence: str = "stop",
    initial_state: TrainState | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> FitResult:
    """Train by minimising the mean loss with ``optimizer``, one compiled epoch at a time.

    Each step computes ``(L, g) = gradients(params, x_batch, y_batch)`` and applies
    ``w <- w + optimizer.update(g)``. ``batch_size=None`` is full-batch gradient descent (one
    step per epoch); otherwise every epoch shuffles on the device and visits each sample once.

    Args:
        params: initial parameters (an MLP's layer list, or any pytree with a callable
            ``gradients``).
        x: inputs ``(n_samples, n_in)``.
        y: targets, as the loss takes them.
        loss: a loss name or :class:`fungrad.Loss`.
        optimizer: any ``optax.GradientTransformation`` (see :mod:`fungrad.optim`).
        epochs: the most epochs to run (always a cap).
        key: PRNG key for shuffling.
        batch_size: minibatch size, or ``None`` for the full batch.
        activation: hidden activation of the MLP.
        output_activation: output activation of the MLP.
        gradients: ``"backprop"`` (fungrad's engine), ``"autodiff"`` (``jax.value_and_grad``) or
            a callable ``(params, x, y) -> (loss, grads)`` (it may also accept ``weights=``, the
            per-sample weights of a padded last batch).
        stop: a condition from :mod:`fungrad.stopping`, or a list; the first that holds ends
            the run.
        validation: ``(x_val, y_val)`` evaluated after each epoch (``val_`` metrics).
        callback: called on the host after each epoch as ``callback(epoch, metrics)``.
        on_divergence: ``"stop"`` (end the run, keep the last finite params) or ``"raise"``.
        initial_state: a :class:`TrainState` to continue from (e.g. a restored checkpoint);
            ``params`` then only fixes the structure.
        mesh: a ``jax.sharding.Mesh`` with a ``"data"`` axis for data-parallel training: each
            minibatch is split over that axis, params and optimizer state are replicated (see
            :mod:`fungrad.parallel`). ``batch_size`` must be a multiple of the axis size.

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
    """
    if on_divergence not in ("stop", "raise"):
        raise ValueError(f"on_divergence: expected 'stop' or 'raise', got {on_divergence!r}")
    _check_optimizer(optimizer)
    program, x, y, validation = _build_program(
        params,
        x,
        y,
        loss=loss,
        epochs=epochs,
        batch_size=batch_size,
        activation=activation,
        output_activation=output_activation,
        gradients=gradients,
        stop=stop,
        validation=validation,
        mesh=mesh,
    )
    if initial_state is None:
        params = jax.tree.map(jnp.asarray, params)
        state = TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), key)
    else:
        state = initial_state
    if mesh is not None:
        state = parallel.place(state, parallel.replicated(mesh))
    carry = _initial_carry(program, state, _history_dtype(state.params))
    code = 0
    for epoch in range(epochs):
        carry = _advance_compiled(carry, x, y, validation, program=program, optimizer=optimizer)
        code, metrics = jax.device_get(
            (carry.code, {name: values[epoch] for name, values in carry.history.items()})
        )
        if callback is not None:
            callback(epoch, {name: float(value) for name, value in metrics.items()})
        if code != 0:
            break
    epochs_run = int(carry.epoch)
    reason = _stop_reason(program, int(code), epochs_run)
    if code == _DIVERGED and on_divergence == "raise":
        raise FloatingPointError(reason)
    history = {name: np.asarray(values[:epochs_run]) for name, values in carry.history.items()}
    return FitResult(carry.state.params, history, reason, epochs_run, carry.state)


# --------------------------------------------------------------------------- restarts


@functools.partial(jax.jit, static_argnames=("program", "optimizer", "dtype"))
def _train_runs(params, learning_rates, keys, x, y, validation, *, program, optimizer, dtype):
    """Every run in one program: ``vmap`` over runs of a ``while_loop`` over epochs."""

    def one_run(params, learning_rate, key):
        opt = optimizer if learning_rate is None else optimizer(learning_rate)
        state = TrainState(params, opt.init(params), jnp.zeros((), jnp.int32), key)
        return jax.lax.while_loop(
            lambda carry: carry.code == 0,
            lambda carry: _advance(program, opt, carry, x, y, validation),
            _initial_carry(program, state, dtype),
        )

    lr_axis = None if learning_rates is None else 0
    return jax.vmap(one_run, in_axes=(0, lr_axis, 0))(params, learning_rates, keys)


def _stack_runs(params):
    if isinstance(params, (list, tuple)) and params and not isinstance(params[0], dict):
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
    return params


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
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
    gradients: GradientSource = "backprop",
    stop: StopCondition | Sequence[StopCondition] | None = None,
    validation: tuple[jax.Array, jax.Array] | None = None,
    select: str | None = None,
    mode: str | None = None,
    mesh: jax.sharding.Mesh | None = None,
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
            and a single unstacked MLP, that MLP starts every run.
        optimizer: a ``GradientTransformation``; with ``learning_rates``, a factory
            ``learning_rate -> GradientTransformation`` (``fungrad.optim.sgd``, ``optax.adam``,
            ``functools.partial(fungrad.optim.momentum, beta=0.9)``); the learning rate is then
            a traced value, so a new grid does not recompile the step.
        learning_rates: R learning rates, one per run.
        select: the metric the best run is chosen by (its final value); default ``val_loss``
            with validation, else ``loss``.
        mode: ``"min"`` or ``"max"``; default ``"max"`` for accuracies, else ``"min"``.
        mesh: a ``jax.sharding.Mesh`` with a ``"runs"`` axis spreads the runs over its devices
            (the number of runs must be a multiple of its size), and/or a ``"data"`` axis
            splits each minibatch over its devices, as in :func:`fit`.

    Returns:
        A :class:`RestartsResult`.
    """
    params = _stack_runs(params)
    if learning_rates is not None:
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
        if isinstance(params, list) and params and jnp.ndim(params[0]["w"]) == 2:
            runs = learning_rates.shape[0]
            params = jax.tree.map(lambda a: jnp.broadcast_to(a, (runs, *a.shape)), params)
    else:
        _check_optimizer(optimizer)
    leaves = jax.tree.leaves(params)
    if not leaves or jnp.ndim(leaves[0]) == 0:
        raise ValueError("params: expected a list of runs or params stacked on a leading run axis")
    runs = leaves[0].shape[0]
    if any(leaf.shape[0] != runs for leaf in leaves):
        raise ValueError("params: every leaf must have the same leading run axis")
    if learning_rates is not None and learning_rates.shape[0] != runs:
        raise ValueError(
            f"learning_rates: expected {runs} values, one per run, got {learning_rates.shape[0]}"
        )
    first = jax.tree.map(lambda a: a[0], params)
    program, x, y, validation = _build_program(
        first,
        x,
        y,
        loss=loss,
        epochs=epochs,
        batch_size=batch_size,
        activation=activation,
        output_activation=output_activation,
        gradients=gradients,
        stop=stop,
        validation=validation,
        mesh=mesh,
        mesh_axes=(parallel.DATA_AXIS, parallel.RUNS_AXIS),
    )
    metric = select or ("val_loss" if validation is not None else "loss")
    if metric not in program.metrics:
        raise ValueError(
            f"select: {metric!r} is not recorded; recorded metrics: {', '.join(program.metrics)}"
        )
    mode = mode or ("max" if metric.endswith("accuracy") else "min")
    if mode not in ("min", "max"):
        raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
    keys = jax.random.split(key, runs)
    dtype = _history_dtype(first)
    if mesh is not None and parallel.RUNS_AXIS in mesh.axis_names:
        devices = mesh.shape[parallel.RUNS_AXIS]
        if runs % devices:
            raise ValueError(
                f"params: {runs} runs cannot be spread evenly over the mesh's {devices} 'runs' "
                f"devices; use a multiple of {devices} runs"
            )
        params, keys, learning_rates = parallel.place(
            (params, keys, learning_rates), parallel.NamedSharding(mesh, parallel.P("runs"))
        )

    carry = _train_runs(
        params,
        learning_rates,
        keys,
        x,
        y,
        validation,
        program=program,
        optimizer=optimizer,
        dtype=jnp.dtype(dtype),
    )
    codes, epochs_run = np.asarray(carry.code), np.asarray(carry.epoch)
    history = {name: np.asarray(values) for name, values in carry.history.items()}
    final = history[metric][np.arange(runs), epochs_run - 1]
    score = np.where(np.isfinite(final), final if mode == "min" else -final, np.inf)
    best = int(np.argmin(score))
    reasons = [
        _stop_reason(program, int(c), int(e)) for c, e in zip(codes, epochs_run, strict=True)
    ]
    best_params = jax.tree.map(lambda a: a[best], carry.state.params)
    return RestartsResult(
        carry.state.params,
        history,
        reasons,
        epochs_run,
        best,
        best_params,
        metric,
        keys,
        carry.state,
    )


def evaluate(
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    loss: str | Loss,
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
) -> dict[str, float]:
    """The mean loss (and accuracy, for classification losses) of an MLP on ``(x, y)``."""
    loss = get_loss(loss)
    mlp.check_params(params)
    x, y = _check_data(("x", "y"), x, y, params, loss, True)
    _, eval_fn = _mlp_sources(
        loss,
        get_activation(activation),
        get_activation(output_activation, argname="output_activation"),
        "backprop",
    )
    return {name: float(value) for name, value in jax.jit(eval_fn)(params, x, y).items()}

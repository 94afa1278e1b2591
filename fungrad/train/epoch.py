"""One epoch, compiled: shuffle, minibatch steps in a ``lax.scan``, metrics, stop and best.

Each epoch shuffles the data on the device with ``fold_in(key, epoch)``, cuts them into
minibatches of a static size (a last partial batch is padded and masked with zero weights,
so every sample is visited exactly once and nothing recompiles), and runs the steps
``w <- update(w, grad L_batch(w))``. :func:`advance` then records the epoch's metrics in the
fixed-size history, keeps the best epoch's parameters (``keep_best``: ``b <- w`` when the
metric improves strictly), and asks the stop conditions whether to go on. The same body runs
once per call in :func:`fungrad.fit` and inside ``lax.while_loop`` in
:func:`fungrad.fit_restarts`.

With ``bfloat16`` or ``float16`` parameters the step is mixed precision: the model runs in the
parameters' dtype, while the per-sample weights, the loss, the metrics' sums and the gradient
norm are float32, and the optimizer keeps float32 statistics (:func:`fungrad.optim.mixed_precision`).
For float32 and float64 parameters none of this adds an operation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from fungrad.losses import accumulation_dtype, in_accumulation_dtype, zero_one
from fungrad.optim import is_low_precision, mixed_precision
from fungrad.train.program import Program
from fungrad.train.state import CAP, DIVERGED, BestSoFar, Carry, TrainState


def tree_where(condition, new, old):
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), new, old)


def _norm(tree) -> jax.Array:
    """The Euclidean norm of all the leaves of ``tree`` taken together."""
    leaves = jax.tree.leaves(in_accumulation_dtype(tree))
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def rule_for_params(optimizer, params):
    """``optimizer``, with float32 statistics when ``params`` are bfloat16 or float16."""
    return mixed_precision(optimizer) if is_low_precision(params) else optimizer


def _step(program: Program, optimizer, x, y):
    def step(state, batch):
        indices, weights, last = batch
        x_batch = x if indices is None else jnp.take(x, indices, axis=0)
        y_batch = y if indices is None else jnp.take(y, indices, axis=0)
        if program.batch_sharding is not None:
            x_batch, y_batch, weights = jax.lax.with_sharding_constraint(
                (x_batch, y_batch, weights), program.batch_sharding
            )
        value, grads, y_hat = program.source.grad_fn(state.params, x_batch, y_batch, weights)
        rule = rule_for_params(optimizer, state.params)
        updates, opt_state = rule.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        count = jnp.sum(weights)
        # The norm of the epoch's last gradient only: a norm every step would read all the
        # gradients once more per step, which at small batches costs as much as a tenth of it.
        grad_norm = jax.lax.cond(
            last,
            lambda g: _norm(g).astype(value.dtype),  # float32 params with float64 data agree
            lambda g: jnp.zeros((), value.dtype),
            grads,
        )
        metrics = {"loss": value * count, "grad_norm": grad_norm}
        if "accuracy" in program.metrics:
            wrong = zero_one(y_hat, y_batch)
            metrics["accuracy"] = jnp.sum((1 - wrong) * weights)
        return TrainState(params, opt_state, state.step + 1, state.key), metrics

    return step


def run_epoch(program: Program, optimizer, state: TrainState, x, y):
    """One pass over the data; returns the new state and the epoch's metrics."""
    n = program.n
    step = _step(program, optimizer, x, y)
    weight_dtype = accumulation_dtype(x.dtype)
    if program.batch_size is None:
        state, metrics = step(state, (None, jnp.ones((n,), weight_dtype), True))
        metrics = jax.tree.map(lambda m: m[None], metrics)
    else:
        size, steps = program.batch_size, program.steps_per_epoch
        epoch = state.step // steps
        order = jax.random.permutation(jax.random.fold_in(state.key, epoch), n)
        pad = steps * size - n
        indices = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(steps, size)
        weights = jnp.concatenate([jnp.ones((n,), weight_dtype), jnp.zeros((pad,), weight_dtype)])
        last = jnp.arange(steps) == steps - 1
        batches = (indices, weights.reshape(steps, size), last)
        state, metrics = jax.lax.scan(step, state, batches)
    summary = {"loss": jnp.sum(metrics["loss"]) / n, "grad_norm": metrics["grad_norm"][-1]}
    if "accuracy" in metrics:
        summary["accuracy"] = jnp.sum(metrics["accuracy"]) / n
    return state, summary


def _update_best(program: Program, best: BestSoFar, params, value, finite, epoch) -> BestSoFar:
    """``best`` after an epoch whose ``keep_best`` metric is ``value``: strict improvement wins."""
    _, mode = program.keep_best
    better = value < best.value if mode == "min" else value > best.value
    better = better & finite & jnp.isfinite(value)
    return BestSoFar(
        tree_where(better, params, best.params),
        jnp.where(better, epoch + 1, best.epoch).astype(best.epoch.dtype),
        jnp.where(better, value, best.value).astype(best.value.dtype),
    )


def advance(program: Program, optimizer, carry: Carry, x, y, validation) -> Carry:
    """Run one epoch, record its metrics, keep the best, and set ``code`` if the run must stop."""
    new_state, metrics = run_epoch(program, optimizer, carry.state, x, y)
    if validation is not None:
        for name, value in program.source.eval_fn(new_state.params, *validation).items():
            metrics["val_" + name] = value
    finite = jnp.isfinite(metrics["loss"]) & _all_finite(new_state.params)
    state = tree_where(finite, new_state, carry.state)
    epoch = carry.epoch
    history = {
        name: values.at[epoch].set(metrics[name].astype(values.dtype))
        for name, values in carry.history.items()
    }
    best = carry.best
    if program.keep_best is not None:
        metric = history[program.keep_best[0]][epoch]
        best = _update_best(program, best, new_state.params, metric, finite, epoch)
    code = jnp.where(epoch + 1 >= program.epochs, CAP, 0)
    for i in reversed(range(len(program.stops))):
        code = jnp.where(program.stops[i].predicate(history, epoch), i + 1, code)
    code = jnp.where(finite, code, DIVERGED).astype(jnp.int32)
    return Carry(state, history, epoch + 1, code, best)


# The compiled epoch is cached on the static program and optimizer: a second fit with the same
# settings and data shapes (new data values, a restored state) reuses it.
advance_compiled = jax.jit(
    lambda carry, x, y, validation, *, program, optimizer: advance(
        program, optimizer, carry, x, y, validation
    ),
    static_argnames=("program", "optimizer"),
)


def initial_carry(program: Program, state: TrainState, dtype) -> Carry:
    """The carry of a run that has not trained yet."""
    history = {name: jnp.full((program.epochs,), jnp.nan, dtype) for name in program.metrics}
    best = None
    if program.keep_best is not None:
        worst = jnp.inf if program.keep_best[1] == "min" else -jnp.inf
        best = BestSoFar(state.params, jnp.zeros((), jnp.int32), jnp.asarray(worst, dtype))
    return Carry(state, history, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), best)


def stop_reason(program: Program, code: int, epochs_run: int) -> str:
    """The words for a stop ``code``."""
    if code == DIVERGED:
        return (
            f"diverged: non-finite loss or parameters in epoch {epochs_run}; "
            "kept the parameters of the last finite epoch"
        )
    if code == CAP:
        return f"epochs: reached the cap of {program.epochs} epochs"
    return program.stops[code - 1].name

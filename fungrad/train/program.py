"""A run's static description, checked: the :class:`Program` the compiled loop is built from.

Everything a user can get wrong is checked here, before anything compiles: data shapes and
values (through the gradient source's own checks, :mod:`fungrad.train.sources`), the batch
size, stop conditions against the metrics the run records, the ``keep_best`` metric and the
mesh.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fungrad import _checks, parallel, stopping
from fungrad._checks import positive_int
from fungrad.losses import accumulation_dtype
from fungrad.stopping import StopCondition
from fungrad.train.sources import Source


class Program(NamedTuple):
    """The static description of a run: everything except the arrays."""

    source: Source  # grad_fn, eval_fn and the model's checks
    n: int
    batch_size: int | None
    epochs: int
    stops: tuple[StopCondition, ...]
    metrics: tuple[str, ...]
    batch_sharding: Any = None  # NamedSharding of a minibatch under a "data" mesh
    keep_best: tuple[str, str] | None = None  # (metric, "min" | "max")

    @property
    def steps_per_epoch(self) -> int:
        return 1 if self.batch_size is None else -(-self.n // self.batch_size)


def as_stops(stop) -> tuple[StopCondition, ...]:
    """``stop`` as a tuple of conditions, checked."""
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


def check_data(names: tuple[str, str], x, y, params, source: Source):
    """Check inputs and targets; ``names`` are what errors call them, e.g. ``("x", "y")``."""
    x_name, y_name = names
    given_x, given_y = x, y
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{x_name}: expected a non-empty batch of samples, got shape {x.shape}")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{y_name}: expected {x.shape[0]} rows to match {x_name}, got shape {y.shape}"
        )
    _check_finite(x_name, _on_host(given_x, x))
    x, y = source.prepare(params, x, y, names)
    _check_finite(y_name, _on_host(given_y, y))
    return x, y


def _on_host(given, converted):
    """``given`` where it is a NumPy array of the same dtype (no conversion overflowed)."""
    same = isinstance(given, np.ndarray) and given.dtype == converted.dtype
    return given if same and given.shape == converted.shape else converted


@jax.jit
def _all_finite(array: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(array))


def _check_finite(name: str, array) -> None:
    """NaN or infinity in ``array``: an error with how many and the first row.

    NumPy arrays are checked where they are, on the host; device arrays by one compiled
    reduction, read back as one bool.
    """
    if not jnp.issubdtype(array.dtype, jnp.floating):
        return
    if isinstance(array, np.ndarray):
        _checks.check_finite(name, array)
    elif not bool(_all_finite(array)):
        if array.is_fully_addressable:
            _checks.check_finite(name, array)
        raise ValueError(f"{name}: contains NaN or infinity")


def check_optimizer(optimizer) -> None:
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            "optimizer: expected an optax.GradientTransformation (e.g. fungrad.optim.sgd(0.1)), "
            f"got {type(optimizer).__name__}"
        )


def history_dtype(params):
    """The float dtype of the recorded metrics: the params' own, float32 for bfloat16/float16."""
    leaves = [leaf for leaf in jax.tree.leaves(params) if jnp.issubdtype(leaf.dtype, jnp.floating)]
    return accumulation_dtype(jnp.result_type(*leaves)) if leaves else jnp.float32


def _check_batch_size(batch_size, n: int, takes_weights: bool) -> int | None:
    """``batch_size`` as an ``int`` in ``[1, n]``, or ``None`` for the full batch."""
    if batch_size is None:
        return None
    batch_size = positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size: expected None or an integer in [1, {n}], got {batch_size}")
    if n % batch_size and not takes_weights:
        raise ValueError(
            f"batch_size: {n} samples leave a partial last batch of {n % batch_size}, which is "
            "masked with per-sample weights, but the gradients callable takes no `weights` "
            "argument; accept weights=... or choose a batch_size that divides the data"
        )
    return batch_size


def _check_metric_use(stops, keep_best, metrics) -> tuple[str, str] | None:
    for s in stops:
        missing = [m for m in s.metrics if m not in metrics]
        if missing:
            raise ValueError(
                f"stop: {s.name} reads {', '.join(missing)}, which this run does not record; "
                f"recorded metrics: {', '.join(metrics)}"
            )
    if keep_best is None:
        return None
    if not isinstance(keep_best, str) or keep_best not in metrics:
        raise ValueError(
            f"keep_best: expected the name of a recorded metric ({', '.join(metrics)}), "
            f"got {keep_best!r}"
        )
    return keep_best, stopping.direction(keep_best)


def build_program(
    params,
    x,
    y,
    *,
    source: Source,
    epochs,
    batch_size,
    stop,
    validation,
    keep_best=None,
    mesh=None,
    mesh_axes=(parallel.DATA_AXIS,),
):
    """Check every argument of a run and return ``(program, x, y, validation)`` on device."""
    epochs = positive_int("epochs", epochs)
    _checks.floating_leaves("params", params)
    x, y = check_data(("x", "y"), x, y, params, source)
    n = x.shape[0]
    batch_size = _check_batch_size(batch_size, n, source.takes_weights)
    metrics = ["loss", "grad_norm"] + [m for m in source.metrics if m != "loss"]
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError("validation: expected a pair (x_val, y_val)")
        validation = check_data(("validation[0]", "validation[1]"), *validation, params, source)
        metrics += ["val_" + m for m in metrics if m != "grad_norm"]
    stops = as_stops(stop)
    best = _check_metric_use(stops, keep_best, metrics)
    batch_sharding = None
    if mesh is not None:
        parallel.check_mesh(mesh, batch=batch_size or n, axes=mesh_axes)
        if parallel.DATA_AXIS in mesh.axis_names:
            batch_sharding = parallel.batch_sharded(mesh)
        x, y, validation = parallel.place((x, y, validation), parallel.replicated(mesh))
    else:
        x, y, validation = jax.device_put((x, y, validation))
    program = Program(source, n, batch_size, epochs, stops, tuple(metrics), batch_sharding, best)
    return program, x, y, validation

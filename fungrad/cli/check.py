"""``fungrad check``: fungrad's two hand-written gradient engines against ``jax.value_and_grad``.

Random MLP architectures are drawn; on each, every activation x loss pair is differentiated
by the MLP engine (:func:`fungrad.backprop.value_and_grad`), by the general engine
(:func:`fungrad.graph.value_and_grad` of the objective ``mean_i l(F(x_i; w), y_i)``) and by
``jax.value_and_grad`` of the same objective. Each row of the table shows, for one pair, the
largest relative error of each engine over all trials, and is printed as soon as its
activation is done (one compiled program per activation and architecture); the command
fails (exit status 1) when an error exceeds the tolerance.
"""

from __future__ import annotations

import argparse

__all__ = ["run_check"]

ENGINES = ("backprop", "graph")


def run_check(args: argparse.Namespace) -> int:
    """Run ``fungrad check`` with parsed arguments and return the exit status.

    Args:
        args: the parsed ``check`` arguments: ``trials``, ``dtype``, ``seed``, ``tolerance``.

    Returns:
        0 when every row agrees within the tolerance, 1 otherwise.
    """
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from fungrad import losses
    from fungrad.activations import activation_names

    dtype = jnp.float64 if args.dtype == "float64" else jnp.float32
    tolerance = args.tolerance or (1e-8 if args.dtype == "float64" else 2e-3)
    names = losses.loss_names()
    rng = np.random.default_rng(args.seed)
    problems = [_random_problem(rng, dtype) for _ in range(args.trials)]
    _print_header(args, tolerance)
    failed = rows = 0
    for activation in activation_names():
        compare = _comparison(activation, names)
        worst = np.zeros((len(names), len(ENGINES)))
        for problem in problems:
            worst = np.maximum(worst, np.asarray(compare(*problem)))
        failed += _print_rows(activation, names, worst, tolerance)
        rows += len(names)
    return _print_summary(failed, rows, tolerance)


def _relative_error(ours, reference):
    """Largest difference over the loss and all gradient leaves, each relative to its scale.

    Gradients are measured against the largest reference gradient entry of the whole
    network: a leaf that is zero up to rounding (a dead unit) has no scale of its own.
    """
    import jax
    import jax.numpy as jnp

    (value, grads), (ref_value, ref_grads) = ours, reference
    value_error = jnp.abs(value - ref_value) / jnp.maximum(jnp.abs(ref_value), 1e-30)
    pairs = list(zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True))
    scale = jnp.max(jnp.stack([jnp.max(jnp.abs(b)) for _, b in pairs]))
    error = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in pairs]))
    return jnp.maximum(value_error, error / jnp.maximum(scale, 1e-30))


def _comparison(activation: str, names):
    """A jitted ``compare(params, x, targets)`` -> errors ``(loss, engine)`` for one activation.

    On CPU it is compiled without XLA's backend optimisations: the program runs once per
    architecture, and they would cost more time than they save (the arithmetic is the same).
    """
    import jax
    import jax.numpy as jnp

    from fungrad import backprop, graph, losses, mlp

    def compare(params, x, targets):
        errors = []
        for name in names:
            loss, y = losses.get_loss(name), targets[name]

            def objective(p, loss=loss, y=y):
                return jnp.mean(loss.fn(mlp.apply(p, x, activation=activation), y))

            reference = jax.value_and_grad(objective)(params)
            engines = (
                backprop.value_and_grad(params, x, y, activation=activation, loss=loss),
                graph.value_and_grad(objective)(params),
            )
            errors.append(jnp.stack([_relative_error(e, reference) for e in engines]))
        return jnp.stack(errors)

    if jax.default_backend() == "cpu":
        return jax.jit(compare, compiler_options={"xla_backend_optimization_level": 0})
    return jax.jit(compare)


def _random_problem(rng, dtype):
    """A random architecture, its parameters, a batch, and targets for every loss.

    The parameters are drawn with NumPy at Glorot's scale, ``Var(w) = 2 / (n_in + n_out)``,
    biases small and nonzero (``mlp.init`` would compile a program per architecture).
    """
    import jax.numpy as jnp

    depth = int(rng.integers(1, 5))
    sizes = [int(n) for n in rng.integers(1, 33, size=depth + 1)]
    sizes[-1] = max(sizes[-1], 2)
    batch = int(rng.integers(1, 17))
    params = [
        {
            "w": jnp.asarray(rng.normal(size=(n, m)) * (2 / (n + m)) ** 0.5, dtype),
            "b": jnp.asarray(0.1 * rng.normal(size=m), dtype),
        }
        for n, m in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    x = jnp.asarray(rng.normal(size=(batch, sizes[0])), dtype)
    real = jnp.asarray(rng.normal(size=(batch, sizes[-1])), dtype)
    targets = {
        "l2": real,
        "mse": real,
        "softmax_cross_entropy": jnp.asarray(rng.integers(0, sizes[-1], size=batch)),
        "sigmoid_binary_cross_entropy": (real > 0).astype(dtype),
    }
    return params, x, targets


def _print_header(args, tolerance: float) -> None:
    import jax

    device = jax.devices()[0]
    print(
        f"backend {jax.default_backend()} ({device.device_kind}), {args.dtype}, "
        f"{args.trials} random networks, tolerance {tolerance:g}",
        flush=True,
    )
    print(f"{'activation':<12} {'loss':<30} {'backprop max error':>18} {'graph max error':>18}")


def _print_rows(activation: str, names, worst, tolerance: float) -> int:
    """Print one activation's rows; return how many have an error beyond the tolerance."""
    failed = 0
    for name, errors in zip(names, worst, strict=True):
        over = [engine for engine, error in zip(ENGINES, errors, strict=True) if error > tolerance]
        flag = f"  FAIL ({', '.join(over)})" if over else ""
        failed += bool(over)
        cells = " ".join(f"{error:>18.3e}" for error in errors)
        print(f"{activation:<12} {name:<30} {cells}{flag}", flush=True)
    return failed


def _print_summary(failed: int, rows: int, tolerance: float) -> int:
    """Print the verdict and return the exit status."""
    if failed:
        print(f"{failed} of {rows} rows disagree with jax.grad beyond {tolerance:g}")
        return 1
    print(f"all {rows} rows agree with jax.grad, in both engines")
    return 0

"""``fungrad check``: fungrad's two hand-written gradient engines against ``jax.value_and_grad``.

MLPs of a few architectures are drawn; on each, every activation x loss pair is
differentiated by the MLP engine (:func:`fungrad.backprop.value_and_grad`), by the general
engine (:func:`fungrad.graph.value_and_grad` of the objective ``mean_i l(F(x_i; w), y_i)``)
and by ``jax.value_and_grad`` of the same objective. Each row of the table shows, for one
pair, the largest relative error of each engine over all architectures and trials, and is
printed as soon as its activation is done.

The default architectures are chosen to reach the edges a random draw seldom does: one layer
on a batch of one, and three layers with a hidden layer one unit wide on a batch of 16.
``--thorough`` adds random ones (depth 1-4, widths 1-32, batch 1-16). One program is compiled
per activation and pair of architectures, on all cores at once; each trial draws new
parameters, inputs and targets of the same shapes and reuses it. The command fails (exit status 1) when
an error exceeds the tolerance.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor

from fungrad.cli import UsageError

__all__ = ["run_check"]

ENGINES = ("backprop", "graph")
ARCHITECTURES = (([6, 3], 1), ([12, 1, 24, 10], 16))
"""The default architectures: ``(layer sizes, batch)``."""
GROUP = 2
"""Architectures per compiled program: bigger programs compile more slowly per architecture."""
THOROUGH = {"architectures": 12, "trials": 4}
"""What ``--thorough`` adds: random architectures, and trials per architecture."""


def run_check(args: argparse.Namespace) -> int:
    """Run ``fungrad check`` with parsed arguments and return the exit status.

    Args:
        args: the parsed ``check`` arguments: ``trials``, ``thorough``, ``dtype``, ``seed``,
            ``tolerance``.

    Returns:
        0 when every row agrees within the tolerance, 1 otherwise.
    """
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from fungrad import losses

    chosen = _activations(args)  # before anything prints: a bad name is one line, exit 2
    dtype = jnp.float64 if args.dtype == "float64" else jnp.float32
    tolerance = args.tolerance or (1e-8 if args.dtype == "float64" else 2e-3)
    names = losses.loss_names()
    rng = np.random.default_rng(args.seed)
    shapes = architectures(rng, args.thorough)
    trials = args.trials or (THOROUGH["trials"] if args.thorough else 2)
    problems = [[_random_problem(rng, dtype, *shape) for shape in shapes] for _ in range(trials)]
    _print_header(args, len(shapes), trials, tolerance)
    groups = range(0, len(shapes), GROUP)  # the first architecture of each program
    work = [(activation, first) for activation in chosen for first in groups]

    def worst(task):  # every trial has the same shapes: one compile per task
        activation, first = task
        chunks = [problem[first : first + GROUP] for problem in problems]
        compare = _comparison(activation, names).lower(chunks[0]).compile()
        return np.max([np.asarray(compare(chunk)) for chunk in chunks], axis=0)

    failed = rows = 0
    errors = np.zeros((len(names), len(ENGINES)))
    # Programs compile on every core while the rows of those done are printed, in order.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for (activation, first), found in zip(work, pool.map(worst, work), strict=True):
            errors = np.maximum(errors, found)
            if first == groups[-1]:  # the activation's last program
                failed += _print_rows(activation, names, errors, tolerance)
                rows, errors = rows + len(names), np.zeros_like(errors)
    return _print_summary(failed, rows, tolerance)


def _activations(args) -> list[str]:
    """``--activations`` checked against the registry, in the order given; else every one."""
    from fungrad.activations import activation_names

    known = activation_names()
    chosen = getattr(args, "activations", None) or known
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise UsageError(
            f"--activations: {', '.join(map(repr, unknown))} is not a registered activation; "
            f"expected some of {', '.join(known)}"
        )
    return list(dict.fromkeys(chosen))


def architectures(rng, thorough: bool = False) -> list[tuple[list[int], int]]:
    """The ``(layer sizes, batch)`` to check: :data:`ARCHITECTURES`, and random ones if thorough.

    >>> import numpy as np
    >>> [sizes for sizes, _ in architectures(np.random.default_rng(0))]
    [[6, 3], [12, 1, 24, 10]]
    >>> len(architectures(np.random.default_rng(0), thorough=True))
    14
    """
    shapes = [(list(sizes), batch) for sizes, batch in ARCHITECTURES]
    for _ in range(THOROUGH["architectures"] if thorough else 0):
        depth = int(rng.integers(1, 5))
        sizes = [int(n) for n in rng.integers(1, 33, size=depth + 1)]
        sizes[-1] = max(sizes[-1], 2)
        shapes.append((sizes, int(rng.integers(1, 17))))
    return shapes


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
    """A jitted ``compare(problems)`` -> errors ``(loss, engine)`` for one activation.

    ``problems`` holds one ``(params, x, targets)`` per architecture; the errors are the
    largest over them. On CPU the program is compiled without XLA's backend optimisations:
    it runs once per trial, and they would cost more time than they save (the arithmetic
    is the same).
    """
    import jax
    import jax.numpy as jnp

    from fungrad import backprop, graph, losses, mlp

    def compare_one(params, x, targets):
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

    def compare(problems):
        return jnp.max(jnp.stack([compare_one(*problem) for problem in problems]), axis=0)

    if jax.default_backend() == "cpu":
        return jax.jit(compare, compiler_options={"xla_backend_optimization_level": 0})
    return jax.jit(compare)


def _random_problem(rng, dtype, sizes: list[int], batch: int):
    """Parameters, a batch and targets for every loss, for an MLP of layer ``sizes``.

    The parameters are drawn with NumPy at Glorot's scale, ``Var(w) = 2 / (n_in + n_out)``,
    biases small and nonzero (``mlp.init`` would compile a program per architecture).
    """
    import jax.numpy as jnp

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


def _print_header(args, architectures: int, trials: int, tolerance: float) -> None:
    import jax

    device = jax.devices()[0]
    print(
        f"backend {jax.default_backend()} ({device.device_kind}), {args.dtype}, "
        f"{architectures} architectures x {trials} trials, tolerance {tolerance:g}",
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

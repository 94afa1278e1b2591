"""``fungrad check``: fungrad's hand-written gradients against ``jax.value_and_grad``.

Random MLP architectures are drawn; on each, every activation x loss pair is differentiated
by :func:`fungrad.backprop.value_and_grad` and by ``jax.value_and_grad`` of the same objective
``mean_i l(F(x_i; w), y_i)``, in one compiled program. The table shows the largest relative
error per pair over all trials; the command fails (exit status 1) when one exceeds the
tolerance.
"""

from __future__ import annotations

import argparse

__all__ = ["run_check"]


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
    pairs = [(a, name) for a in activation_names() for name in losses.loss_names()]
    compare = _comparison(pairs)
    rng = np.random.default_rng(args.seed)
    worst = np.zeros(len(pairs))
    for _ in range(args.trials):
        worst = np.maximum(worst, np.asarray(compare(*_random_problem(rng, dtype))))
    return _report(args, pairs, worst, tolerance)


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


def _comparison(pairs):
    """A jitted ``compare(params, x, targets)``: every (activation, loss) pair in one program."""
    import jax
    import jax.numpy as jnp

    from fungrad import backprop, losses, mlp

    @jax.jit
    def compare(params, x, targets):
        worst = []
        for activation, name in pairs:
            loss, y = losses.get_loss(name), targets[name]

            def objective(p, loss=loss, y=y, activation=activation):
                return jnp.mean(loss.fn(mlp.apply(p, x, activation=activation), y))

            ours = backprop.value_and_grad(params, x, y, activation=activation, loss=loss)
            worst.append(_relative_error(ours, jax.value_and_grad(objective)(params)))
        return jnp.stack(worst)

    return compare


def _random_problem(rng, dtype):
    """A random architecture, its parameters, a batch, and targets for every loss."""
    import jax
    import jax.numpy as jnp

    from fungrad import mlp

    depth = int(rng.integers(1, 5))
    sizes = [int(n) for n in rng.integers(1, 33, size=depth + 1)]
    sizes[-1] = max(sizes[-1], 2)
    batch = int(rng.integers(1, 17))
    params = mlp.init(jax.random.key(int(rng.integers(2**31))), sizes, dtype=dtype)
    x = jnp.asarray(rng.normal(size=(batch, sizes[0])), dtype)
    real = jnp.asarray(rng.normal(size=(batch, sizes[-1])), dtype)
    targets = {
        "l2": real,
        "mse": real,
        "softmax_cross_entropy": jnp.asarray(rng.integers(0, sizes[-1], size=batch)),
        "sigmoid_binary_cross_entropy": (real > 0).astype(dtype),
    }
    return params, x, targets


def _report(args, pairs, worst, tolerance: float) -> int:
    """Print the table of largest errors and return the exit status."""
    import jax

    device = jax.devices()[0]
    print(
        f"backend {jax.default_backend()} ({device.device_kind}), {args.dtype}, "
        f"{args.trials} random networks, tolerance {tolerance:g}"
    )
    print(f"{'activation':<12} {'loss':<30} {'max relative error':>20}")
    failed = 0
    for (activation, name), error in zip(pairs, worst, strict=True):
        flag = "" if error <= tolerance else "  FAIL"
        failed += bool(flag)
        print(f"{activation:<12} {name:<30} {error:>20.3e}{flag}")
    if failed:
        print(f"{failed} of {len(pairs)} rows disagree with jax.grad beyond {tolerance:g}")
        return 1
    print(f"all {len(pairs)} rows agree with jax.grad")
    return 0

"""fungrad's hand-written backprop against JAX's autodiff, on one network and one batch.

``fungrad.value_and_grad`` computes the loss and its gradient with the engine's own rules
(dense, activation and loss VJPs, last layer to first); ``jax.value_and_grad`` differentiates
the same objective, L(w) = 1/N sum_i l(F(x_i; w), y_i), by tracing ``fungrad.mlp.apply``.
In float64 the two agree to rounding error.

    python examples/backprop_vs_jax.py [--quick]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fungrad  # noqa: E402
from fungrad import mlp  # noqa: E402

ACTIVATION = "tanh"
LOSS = "softmax_cross_entropy"


def jax_objective(params, x, y):
    """The same mean loss, written with ``mlp.apply`` for ``jax.value_and_grad`` to trace."""
    logits = mlp.apply(params, x, activation=ACTIVATION)
    return jnp.mean(fungrad.get_loss(LOSS).fn(logits, y))


def max_difference(a, b) -> float:
    leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in leaves)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller network (for CI)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [5, 8, 3] if args.quick else [20, 64, 64, 10]
    batch = 16 if args.quick else 256

    params = mlp.init(jax.random.key(args.seed), sizes, dtype=jnp.float64, activation=ACTIVATION)
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((batch, sizes[0]))
    y = rng.integers(0, sizes[-1], batch)

    # Jitted, as in training: one compiled program each rather than op-by-op dispatch.
    backprop = jax.jit(
        lambda p, x, y: fungrad.value_and_grad(p, x, y, activation=ACTIVATION, loss=LOSS)
    )
    loss_bp, grads_bp = backprop(params, x, y)
    loss_jax, grads_jax = jax.jit(jax.value_and_grad(jax_objective))(params, x, y)

    print(f"network {sizes}, {ACTIVATION} hidden layers, {LOSS}, batch of {batch}, float64")
    print(f"loss  fungrad.value_and_grad: {float(loss_bp):.15f}")
    print(f"loss  jax.value_and_grad:     {float(loss_jax):.15f}")
    for k, (g_bp, g_jax) in enumerate(zip(grads_bp, grads_jax, strict=True)):
        for name in ("w", "b"):
            print(
                f"layer {k} d{name} {str(g_bp[name].shape):>9}: "
                f"|fungrad| = {float(jnp.linalg.norm(g_bp[name])):.10f}, "
                f"|jax| = {float(jnp.linalg.norm(g_jax[name])):.10f}"
            )
    difference = max(max_difference(grads_bp, grads_jax), abs(float(loss_bp - loss_jax)))
    print(f"max difference: {difference:.3e}")


if __name__ == "__main__":
    main()

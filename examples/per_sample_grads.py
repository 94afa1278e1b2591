"""Per-sample gradients with ``vmap``: one gradient per sample, and their mean is the batch gradient.

The training objective is a mean over samples, L(w) = 1/N sum_i l_i(w), so its gradient is
the mean of the per-sample gradients grad l_i(w). ``fungrad.per_sample_value_and_grad`` maps
the backprop engine over the batch axis with ``jax.vmap`` and returns every grad l_i at once
(useful for gradient statistics, clipping per sample, or influence of single samples); this
script checks that their mean is ``fungrad.value_and_grad``'s batch gradient, and compares
them with ``jax.vmap(jax.grad(...))``.

    python examples/per_sample_grads.py [--quick]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import fungrad  # noqa: E402
from fungrad import mlp  # noqa: E402

LOSS = "softmax_cross_entropy"


def max_difference(a, b) -> float:
    leaves = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in leaves)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller batch (for CI)")
    args = parser.parse_args(argv)
    batch = 32 if args.quick else 512
    sizes = [6, 16, 4]

    params = mlp.init(jax.random.key(0), sizes, dtype=jnp.float64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0]))
    y = rng.integers(0, sizes[-1], batch)

    losses, per_sample = jax.jit(
        lambda p, x, y: fungrad.per_sample_value_and_grad(p, x, y, loss=LOSS)
    )(params, x, y)
    loss, grads = jax.jit(lambda p, x, y: fungrad.value_and_grad(p, x, y, loss=LOSS))(params, x, y)
    print(f"per-sample losses {losses.shape}, per-sample dw of layer 0 {per_sample[0]['w'].shape}")

    mean = jax.tree.map(lambda g: jnp.mean(g, axis=0), per_sample)
    mean_difference = max(max_difference(mean, grads), abs(float(jnp.mean(losses) - loss)))
    print(f"mean of per-sample gradients vs batch gradient, max difference: {mean_difference:.3e}")

    def sample_loss(params, x_i, y_i):
        return fungrad.get_loss(LOSS).fn(mlp.apply(params, x_i[None]), y_i[None])[0]

    per_sample_jax = jax.jit(jax.vmap(jax.grad(sample_loss), in_axes=(None, 0, 0)))(params, x, y)
    jax_difference = max_difference(per_sample, per_sample_jax)
    print(f"per-sample gradients vs jax.vmap(jax.grad), max difference: {jax_difference:.3e}")

    norms = jax.vmap(optax.global_norm)(per_sample)
    print(
        f"per-sample gradient norms: min {float(norms.min()):.4f}, "
        f"median {float(jnp.median(norms)):.4f}, max {float(norms.max()):.4f}; "
        f"norm of their mean: {float(optax.global_norm(grads)):.4f}"
    )


if __name__ == "__main__":
    main()

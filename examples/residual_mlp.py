"""A residual MLP with layer normalisation, trained by fungrad's general engine.

The model is a plain function of a params dict: a linear map into a width-``w`` stream, then
blocks ``h <- h + gelu(LN(h) W + b)`` (pre-norm residual blocks, ``LN`` the layer
normalisation ``(h - mean) / sqrt(var + eps) * scale + shift`` over the features), then a
linear head. It learns ``y = sin(2 x1) cos(x2)`` from noisy samples.

First the general engine's gradient of the objective on one batch is compared with
``jax.value_and_grad``'s; then ``fungrad.fit(..., model=residual_mlp, gradients="graph")``
trains it, and the error against the clean function is measured on fresh inputs.

    python examples/residual_mlp.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import fungrad
from fungrad import graph, optim

NOISE = 0.05


def layer_norm(h, scale, shift, eps=1e-5):
    """``(h - mean) / sqrt(var + eps) * scale + shift``, over the last axis."""
    mean = jnp.mean(h, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(h - mean), axis=-1, keepdims=True)
    return (h - mean) * jax.lax.rsqrt(variance + eps) * scale + shift


def residual_mlp(params, x):
    """``(n, 2) -> (n, 1)``: embed, the residual blocks, then the head."""
    h = x @ params["embed"]["w"] + params["embed"]["b"]
    for block in params["blocks"]:
        normed = layer_norm(h, block["scale"], block["shift"])
        h = h + jax.nn.gelu(normed @ block["w"] + block["b"])
    return h @ params["head"]["w"] + params["head"]["b"]


def init(key, width=32, blocks=3, n_in=2, n_out=1):
    """Glorot-normal weights, zero biases, LN scale 1 and shift 0."""
    glorot = jax.nn.initializers.glorot_normal()
    keys = jax.random.split(key, blocks + 2)
    return {
        "embed": {"w": glorot(keys[0], (n_in, width)), "b": jnp.zeros(width)},
        "blocks": [
            {
                "scale": jnp.ones(width),
                "shift": jnp.zeros(width),
                "w": glorot(k, (width, width)),
                "b": jnp.zeros(width),
            }
            for k in keys[1:-1]
        ],
        "head": {"w": glorot(keys[-1], (width, n_out)), "b": jnp.zeros(n_out)},
    }


def target(x):
    return np.sin(2 * x[:, :1]) * np.cos(x[:, 1:])


def samples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` inputs uniform in ``[-2, 2]^2`` and noisy targets, float32."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 2))
    y = target(x) + NOISE * rng.standard_normal((n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def objective(params, x, y):
    """What ``fit(loss="l2")`` minimises on a batch: ``1/N sum_i ||F(x_i) - y_i||^2``."""
    return jnp.mean(jnp.sum(jnp.square(residual_mlp(params, x) - y), axis=-1))


def compare_engines(params, x, y) -> None:
    """The general engine's value and gradient on a batch, against jax.value_and_grad's."""
    value, grads = jax.jit(graph.value_and_grad(objective))(params, x, y)
    expected_value, expected = jax.jit(jax.value_and_grad(objective))(params, x, y)
    difference = max(
        float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(expected), strict=True)
    )
    print(f"batch of {len(x)}: loss {float(value):.6f} (jax {float(expected_value):.6f})")
    print(f"graph vs jax gradient, max relative difference: {difference:.2e}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less data, fewer epochs (for CI)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n, epochs = (512, 30) if args.quick else (2048, 150)

    x, y = samples(n, args.seed)
    params = init(jax.random.key(args.seed))
    compare_engines(params, x[:64], y[:64])

    result = fungrad.fit(
        params,
        x,
        y,
        model=residual_mlp,
        gradients="graph",
        loss="l2",
        optimizer=optim.adam(0.003),
        epochs=epochs,
        batch_size=32,
        key=jax.random.key(args.seed + 1),
    )
    fresh = np.random.default_rng(args.seed + 2).uniform(-2, 2, (1000, 2)).astype(np.float32)
    clean = target(fresh).astype(np.float32)
    error = fungrad.evaluate(result.params, fresh, clean, model=residual_mlp, loss="l2")
    print(f"{result.epochs_run} epochs ({result.stop_reason})")
    print(f"final loss = {result.history['loss'][-1]:.5f} (noise variance {NOISE**2:.5f})")
    print(f"variance of the clean function = {float(np.var(clean)):.5f}")
    print(f"loss against the clean function = {error['loss']:.5f}")


if __name__ == "__main__":
    main()

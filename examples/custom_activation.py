"""A custom activation: swish, f(z) = z sigmoid(z), with its derivative written by hand.

The backprop engine needs f'(z) for the activation rule delta_z = delta_a * f'(z), and never
differentiates f itself, so a new activation brings its derivative along:

    f'(z) = s + z s (1 - s),  with s = sigmoid(z).

The script checks that derivative against ``jax.grad`` of f, registers the activation under
a name, and compares the network gradient of fungrad's backprop with ``jax.value_and_grad``.

    python examples/custom_activation.py [--quick]
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fungrad  # noqa: E402
from fungrad import mlp, optim  # noqa: E402


def swish(z):
    return z * jax.nn.sigmoid(z)


def swish_derivative(z):
    s = jax.nn.sigmoid(z)
    return s + z * s * (1 - s)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for CI)")
    args = parser.parse_args(argv)

    # 1. The derivative against autodiff of f, on a grid.
    z = jnp.linspace(-8, 8, 1001, dtype=jnp.float64)
    autodiff = jax.vmap(jax.grad(swish))(z)
    derivative_difference = float(jnp.max(jnp.abs(swish_derivative(z) - autodiff)))
    print(f"derivative max difference: {derivative_difference:.3e}")

    # 2. Use it: as a value, fungrad.Activation("swish", swish, swish_derivative), or by name.
    fungrad.register_activation("swish", swish, swish_derivative)
    sizes = [3, 16, 16, 1]
    params = mlp.init(jax.random.key(0), sizes, dtype=jnp.float64, activation="swish")
    x = np.random.default_rng(0).standard_normal((64, 3))
    y = np.sum(np.sin(x), axis=1, keepdims=True)

    def objective(params):
        return jnp.mean((mlp.apply(params, x, activation="swish") - y) ** 2)

    # Jitted, as in training: one compiled program each rather than op-by-op dispatch.
    loss, grads = jax.jit(
        lambda params: fungrad.value_and_grad(params, x, y, activation="swish", loss="mse")
    )(params)
    loss_jax, grads_jax = jax.jit(jax.value_and_grad(objective))(params)
    gradient_difference = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_jax), strict=True)
    )
    print(f"loss: fungrad {float(loss):.12f}, jax {float(loss_jax):.12f}")
    print(f"gradient max difference: {gradient_difference:.3e}")

    # 3. Train with it.
    result = fungrad.fit(
        params,
        x,
        y,
        loss="mse",
        optimizer=optim.adam(0.01),
        epochs=100 if args.quick else 500,
        activation="swish",
        key=jax.random.key(1),
    )
    print(
        f"training with swish: loss {result.history['loss'][0]:.5f} -> "
        f"{result.history['loss'][-1]:.5f} in {result.epochs_run} epochs"
    )


if __name__ == "__main__":
    main()

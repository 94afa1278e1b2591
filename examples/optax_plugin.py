"""Any optax optimizer drives ``fungrad.fit``.

fungrad's own update rules (``fungrad.optim``) are ``optax.GradientTransformation``s, and
``fit`` takes any other one just the same: AdamW, a chain of gradient clipping and Adam,
SGD with a learning-rate schedule, or a rule of your own built from optax's pieces.

The task: regress y = sin(x1) cos(x2) on the square [-2, 2]^2 with a tanh MLP.

    python examples/optax_plugin.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
import optax

import fungrad
from fungrad import mlp, optim


def surface(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 2))
    y = np.sin(x[:, :1]) * np.cos(x[:, 1:])
    return x.astype(np.float32), y.astype(np.float32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for CI)")
    args = parser.parse_args(argv)
    epochs, batch_size = (30, 32) if args.quick else (200, 32)
    x, y = surface(512, seed=0)
    steps = epochs * (len(x) // batch_size)

    optimizers = {
        "fungrad.optim.momentum(0.05, 0.9)": optim.momentum(0.05, 0.9),
        "optax.adamw(3e-3, weight_decay=1e-4)": optax.adamw(3e-3, weight_decay=1e-4),
        "optax.chain(clip_by_global_norm(1), adam(3e-3))": optax.chain(
            optax.clip_by_global_norm(1.0), optax.adam(3e-3)
        ),
        "optax.sgd(cosine_decay_schedule(0.1, steps), momentum=0.9)": optax.sgd(
            optax.cosine_decay_schedule(0.1, steps), momentum=0.9
        ),
    }
    params = mlp.init(jax.random.key(0), [2, 32, 32, 1], activation="tanh")
    initial = fungrad.evaluate(params, x, y, loss="mse", activation="tanh")["loss"]
    print(f"initial loss = {initial:.5f}")
    for name, optimizer in optimizers.items():
        result = fungrad.fit(
            params,
            x,
            y,
            loss="mse",
            optimizer=optimizer,
            epochs=epochs,
            batch_size=batch_size,
            activation="tanh",
            key=jax.random.key(1),
        )
        print(f"{name}: final loss = {result.history['loss'][-1]:.5f}")


if __name__ == "__main__":
    main()

"""Restarts: train many runs as one vmapped program and keep the best.

Where gradient descent ends up depends on the initial weights and on the step size, so a
standard remedy is to train several times and keep the best run. ``fungrad.fit_restarts``
trains every (seed, learning rate) pair at once: the runs are ``vmap``-ed inside one compiled
``lax.while_loop``, each stops on its own condition, and the result names the best run by a
chosen metric (here the final validation accuracy).

The task: tell apart two noisy concentric rings in the plane.

    python examples/restarts.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools

import jax
import numpy as np

import fungrad
from fungrad import mlp, optim, stopping


def rings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on two noisy rings of radius 1 (class 0) and 2 (class 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = 1 + y + 0.15 * rng.standard_normal(n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    return x.astype(np.float32), y.astype(np.int32)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and epochs (for CI)")
    args = parser.parse_args(argv)
    seeds = [0, 1] if args.quick else [0, 1, 2, 3]
    learning_rates = [0.003, 0.03, 0.3]
    epochs = 40 if args.quick else 200

    x, y = rings(512, seed=0)
    x_val, y_val = rings(256, seed=1)
    sizes = [2, 16, 16, 2]
    runs = list(itertools.product(seeds, learning_rates))
    result = fungrad.fit_restarts(
        [mlp.init(jax.random.key(seed), sizes) for seed, _ in runs],
        x,
        y,
        loss="softmax_cross_entropy",
        optimizer=optim.sgd,  # a factory: each run's learning rate is a traced value
        learning_rates=[lr for _, lr in runs],
        epochs=epochs,
        batch_size=32,
        key=jax.random.key(42),
        stop=stopping.target("val_accuracy", 0.99),  # >= 0.99: accuracies are maximised
        validation=(x_val, y_val),
        select="val_accuracy",
    )

    print(f"{len(runs)} runs, network {sizes}, SGD with batches of 32, at most {epochs} epochs")
    print(" run  seed  learning rate  epochs  val_accuracy  stopped by")
    for r, (seed, lr) in enumerate(runs):
        epochs_run = int(result.epochs_run[r])
        accuracy = result.history["val_accuracy"][r, epochs_run - 1]
        print(
            f"{r:4d}  {seed:4d}  {lr:13g}  {epochs_run:6d}  {accuracy:12.4f}  "
            f"{result.stop_reasons[r]}"
        )
    best = result.best_index
    seed, lr = runs[best]
    best_accuracy = result.history["val_accuracy"][best, result.epochs_run[best] - 1]
    print(f"best run: {best} (seed {seed}, learning rate {lr:g}) by {result.metric}")
    test = fungrad.evaluate(result.best_params, *rings(1000, seed=2), loss="softmax_cross_entropy")
    print(f"best val_accuracy = {best_accuracy:.4f}")
    print(f"best run's test accuracy = {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()

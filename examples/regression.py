"""Regression: fit a tanh MLP to a noisy sine with the l2 loss.

The data are y = sin(x) + noise, noise ~ N(0, 0.1^2), for x in [-pi, pi]. The best any model
can do on fresh noisy samples is the noise variance, 0.01; against the clean sine the error
should go well below that.

    python examples/regression.py [--quick] [--plot] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

import fungrad
from fungrad import mlp, optim, stopping

NOISE = 0.1


def noisy_sine(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples ``x (n, 1)``, ``y = sin(x) + noise (n, 1)``, float32."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-np.pi, np.pi, (n, 1))
    y = np.sin(x) + NOISE * rng.standard_normal((n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def plot(params, x, y, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(-np.pi, np.pi, 300, dtype=np.float32)[:, None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x[:, 0], y[:, 0], ".", markersize=3, alpha=0.5, label="noisy samples")
    ax.plot(grid, np.sin(grid), "k--", linewidth=1, label="sin(x)")
    ax.plot(grid, mlp.apply(params, grid, activation="tanh"), linewidth=2, label="MLP")
    ax.set(xlabel="x", ylabel="y")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less data, fewer epochs (for CI)")
    parser.add_argument("--plot", action="store_true", help="save a plot (needs matplotlib)")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="where the plot goes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n, epochs = (256, 100) if args.quick else (1024, 400)

    x, y = noisy_sine(n, args.seed)
    params = mlp.init(jax.random.key(args.seed), [1, 32, 32, 1], activation="tanh")
    result = fungrad.fit(
        params,
        x,
        y,
        loss="l2",
        optimizer=optim.adam(0.01),
        epochs=epochs,
        batch_size=32,
        activation="tanh",
        key=jax.random.key(args.seed + 1),
        stop=stopping.plateau("loss", tol=1e-6, patience=20),
    )
    grid = np.linspace(-np.pi, np.pi, 200, dtype=np.float32)[:, None]
    clean = fungrad.evaluate(result.params, grid, np.sin(grid), loss="l2", activation="tanh")
    print(f"{result.epochs_run} epochs ({result.stop_reason})")
    print(f"final loss = {result.history['loss'][-1]:.5f} (noise variance {NOISE**2:.5f})")
    print(f"loss against the clean sine = {clean['loss']:.5f}")
    if args.plot:
        path = args.out / "regression.png"
        if plot(result.params, x, y, path):
            print(f"plot written to {path}")
        else:
            print("matplotlib is not installed; skipped the plot")


if __name__ == "__main__":
    main()

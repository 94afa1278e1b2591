"""Gradient descent vs momentum on L(w) = w^4 + 2 w^3, starting from w = 1.

dL/dw = 4 w^3 + 6 w^2 = 2 w^2 (2 w + 3) vanishes at w = 0, a flat inflection point, and at
w = -3/2, the minimum (L = -27/16). Plain gradient descent slows to a crawl near 0, because
the slope there is ~6 w^2 and vanishes; momentum, a ball rolling with inertia, keeps the
speed it built up on the way down, crosses the flat stretch and settles in the minimum.

The trajectories are plotted to ``<out>/rolling_ball.png`` when matplotlib is installed.

    python examples/rolling_ball.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from fungrad import optim

MINIMUM = -1.5


def loss(w):
    return w**4 + 2 * w**3


def trajectory(optimizer: optax.GradientTransformation, w0: float, steps: int) -> jax.Array:
    """``[w_0, w_1, ..., w_steps]`` under ``optimizer``, as one compiled ``lax.scan``."""

    def step(carry, _):
        w, opt_state = carry
        updates, opt_state = optimizer.update(jax.grad(loss)(w), opt_state, w)
        w = optax.apply_updates(w, updates)
        return (w, opt_state), w

    w0 = jnp.asarray(w0)
    _, ws = jax.lax.scan(step, (w0, optimizer.init(w0)), length=steps)
    return jnp.concatenate([w0[None], ws])


def plot(trajectories: dict[str, jax.Array], path: Path) -> bool:
    """Plot each trajectory over the loss curve and against the step; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curve, steps) = plt.subplots(1, 2, figsize=(11, 4))
    grid = jnp.linspace(-2.2, 1.2, 400)
    curve.plot(grid, loss(grid), color="black", linewidth=1, label="L(w) = w^4 + 2 w^3")
    for name, ws in trajectories.items():
        curve.plot(ws, loss(ws), "o-", markersize=2, linewidth=0.5, label=name)
        steps.plot(ws, label=name)
    curve.set(xlabel="w", ylabel="L(w)", title="where the ball goes")
    steps.axhline(MINIMUM, color="gray", linestyle=":", label="minimum w = -3/2")
    steps.axhline(0, color="gray", linestyle="--", linewidth=0.5, label="flat point w = 0")
    steps.set(xlabel="step", ylabel="w", title="w over the steps")
    curve.legend()
    steps.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (for CI)")
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--beta", type=float, default=0.9, help="the momentum coefficient")
    parser.add_argument("--out", type=Path, default=Path("runs"), help="where the plot goes")
    args = parser.parse_args(argv)
    steps = 200 if args.quick else 500

    trajectories = {
        "gradient descent": trajectory(optim.gd(args.learning_rate), 1.0, steps),
        f"momentum (beta = {args.beta})": trajectory(
            optim.momentum(args.learning_rate, args.beta), 1.0, steps
        ),
    }
    for name, ws in trajectories.items():
        print(f"{name}: final w = {float(ws[-1]):+.6f}, L(w) = {float(loss(ws[-1])):+.6f}")
    print("gradient descent stalls near the flat point w = 0; momentum reaches the minimum -3/2")

    path = args.out / "rolling_ball.png"
    if plot(trajectories, path):
        print(f"plot written to {path}")
    else:
        print("matplotlib is not installed; skipped the plot")


if __name__ == "__main__":
    main()

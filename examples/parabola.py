"""Gradient descent on a parabola: minimise L(w) = w^2 + 1, whose minimum is L(0) = 1.

The gradient is dL/dw = 2 w, so each step w_k = w_{k-1} - lr * 2 w_{k-1} shrinks w by the
factor (1 - 2 lr): w goes to 0 and L(w) to 1.

The script does it twice: by hand with an optax loop over ``fungrad.optim.gd``, then through
``fungrad.fit`` with a callable gradient source ``(params, x, y) -> (loss, grads)`` -- the
parameters are a single scalar, not an MLP, and the data are unused.

    python examples/parabola.py [--quick]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax

import fungrad
from fungrad import optim


def loss(w):
    return w**2 + 1


def loss_and_grad(w, x, y):
    """A gradient source for ``fungrad.fit``: the value and the hand-derived gradient 2 w."""
    return loss(w), 2 * w


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (for CI)")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--w0", type=float, default=3.0, help="the starting point")
    args = parser.parse_args(argv)
    steps = 30 if args.quick else 100

    print("optax loop with fungrad.optim.gd:")
    optimizer = optim.gd(args.learning_rate)
    w = jnp.asarray(args.w0)
    opt_state = optimizer.init(w)
    for k in range(1, steps + 1):
        _, grad = loss_and_grad(w, None, None)
        updates, opt_state = optimizer.update(grad, opt_state)
        w = optax.apply_updates(w, updates)
        if k in (1, 2, 5, 10) or k % 10 == 0:
            print(f"  step {k:4d}  w = {float(w):+.6f}  L(w) = {float(loss(w)):.6f}")

    print("fungrad.fit with a callable gradient source:")
    result = fungrad.fit(
        jnp.asarray(args.w0),
        jnp.zeros((1, 1)),  # placeholder data: this objective does not depend on any
        jnp.zeros((1,)),
        loss="l2",
        optimizer=optim.gd(args.learning_rate),
        epochs=steps,
        key=jax.random.key(0),
        gradients=loss_and_grad,
    )
    w_fit = float(result.params)
    print(f"  {result.epochs_run} epochs ({result.stop_reason})")
    print(f"final w = {w_fit:.6g}")
    print(f"final L(w) = {float(loss(result.params)):.6g}")


if __name__ == "__main__":
    main()

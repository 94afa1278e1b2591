"""A small CNN on the bundled 8x8 digits, trained by fungrad's general engine.

The model is a plain function of a params dict: two 3x3 convolutions
(``lax.conv_general_dilated``), each followed by relu and 2x2 max pooling
(``lax.reduce_window``), then a dense head. ``fungrad.fit(..., model=cnn,
gradients="graph")`` trains it with the gradients of the general engine: backprop on the
computational graph of the whole objective, one hand-written rule per primitive. The
parameters kept are those of the best validation epoch; the test part is looked at once, at
the end.

    python examples/cnn_digits.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from jax import lax

import fungrad
from fungrad import data, optim

DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def conv_block(layer, h):
    """3x3 convolution (same padding) -> relu -> 2x2 max pooling: (n, H, W, C) -> (n, H/2, W/2, C')."""
    h = lax.conv_general_dilated(h, layer["w"], (1, 1), "SAME", dimension_numbers=DIMENSIONS)
    h = jax.nn.relu(h + layer["b"])
    return lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def cnn(params, x):
    """Logits ``(n, 10)`` of images ``(n, 8, 8, 1)``: 8x8x1 -> 4x4x16 -> 2x2x32 -> 10."""
    h = conv_block(params["conv1"], x)
    h = conv_block(params["conv2"], h)
    h = h.reshape(h.shape[0], -1)
    return h @ params["head"]["w"] + params["head"]["b"]


def init(key, channels=(16, 32), n_classes=10):
    """He-normal kernels (scaled for relu), zero biases."""
    he = jax.nn.initializers.he_normal()
    k1, k2, k3 = jax.random.split(key, 3)
    c1, c2 = channels
    return {
        "conv1": {"w": he(k1, (3, 3, 1, c1)), "b": jnp.zeros(c1)},
        "conv2": {"w": he(k2, (3, 3, c1, c2)), "b": jnp.zeros(c2)},
        "head": {
            "w": jax.nn.initializers.glorot_normal()(k3, (2 * 2 * c2, n_classes)),
            "b": jnp.zeros(n_classes),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for CI)")
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 4 if args.quick else 40
    started = time.perf_counter()

    digits = data.load("digits")
    images = (digits.x / 16.0).reshape(-1, 8, 8, 1)  # pixels 0..16, rows of 8
    parts = data.split(images, digits.y, seed=args.seed, validation=0.1, test=0.2)
    print(
        f"digits: {len(parts.x_train)} train, {len(parts.x_val)} validation, "
        f"{len(parts.x_test)} test images of 8x8, {digits.n_classes} classes"
    )

    def report(epoch, metrics):
        if epoch % 5 == 0 or epoch == epochs - 1:
            print(
                f"  epoch {epoch:3d}  loss {metrics['loss']:.4f}  "
                f"accuracy {metrics['accuracy']:.4f}  val_accuracy {metrics['val_accuracy']:.4f}"
            )

    result = fungrad.fit(
        init(jax.random.key(args.seed)),
        parts.x_train,
        parts.y_train,
        model=cnn,
        gradients="graph",
        loss="softmax_cross_entropy",
        optimizer=optim.adam(args.learning_rate),
        epochs=epochs,
        batch_size=args.batch_size,
        key=jax.random.key(args.seed + 1),
        validation=(parts.x_val, parts.y_val),
        keep_best="val_loss",
        callback=report,
    )
    print(f"{result.epochs_run} epochs ({result.stop_reason}); best epoch {result.best_epoch}")
    test = fungrad.evaluate(
        result.params, parts.x_test, parts.y_test, model=cnn, loss="softmax_cross_entropy"
    )
    print(f"test loss = {test['loss']:.4f}")
    print(f"test accuracy = {test['accuracy']:.4f}")
    print(f"run time = {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

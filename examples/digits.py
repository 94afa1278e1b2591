"""Handwritten digits: an MLP classifier on the bundled UCI digits (8x8 images, 10 classes).

The data are cut into seeded, stratified train / validation / test parts, standardised with
statistics of the training part only, and an MLP is trained with minibatch SGD with momentum
on the softmax cross-entropy. Training stops when the training loss stops changing (or at
the epoch cap); the test part is looked at once, at the end.

    python examples/digits.py [--quick]
"""

from __future__ import annotations

import argparse

import jax

import fungrad
from fungrad import data, mlp, optim, stopping


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (for CI)")
    parser.add_argument("--hidden", type=int, nargs="*", default=[64], help="hidden widths")
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 15 if args.quick else 100

    digits = data.load_digits()
    parts = data.split(digits.x, digits.y, seed=args.seed, validation=0.1, test=0.2)
    standardize = data.fit_standardizer(parts.x_train)
    x_train, x_val, x_test = map(standardize, (parts.x_train, parts.x_val, parts.x_test))
    print(
        f"digits: {len(x_train)} train, {len(x_val)} validation, {len(x_test)} test samples, "
        f"{digits.x.shape[1]} pixels, {digits.n_classes} classes"
    )

    sizes = [digits.x.shape[1], *args.hidden, digits.n_classes]
    params = mlp.init(jax.random.key(args.seed), sizes)

    def report(epoch, metrics):
        if epoch % 5 == 0:
            print(
                f"  epoch {epoch:3d}  loss {metrics['loss']:.4f}  "
                f"accuracy {metrics['accuracy']:.4f}  val_accuracy {metrics['val_accuracy']:.4f}"
            )

    result = fungrad.fit(
        params,
        x_train,
        parts.y_train,
        loss="softmax_cross_entropy",
        optimizer=optim.momentum(args.learning_rate, 0.9),
        epochs=epochs,
        batch_size=args.batch_size,
        key=jax.random.key(args.seed + 1),
        validation=(x_val, parts.y_val),
        stop=stopping.plateau("loss", tol=1e-4, patience=5),
        callback=report,
    )
    print(f"{result.epochs_run} epochs ({result.stop_reason})")
    test = fungrad.evaluate(result.params, x_test, parts.y_test, loss="softmax_cross_entropy")
    print(f"test loss = {test['loss']:.4f}")
    print(f"test accuracy = {test['accuracy']:.4f}")


if __name__ == "__main__":
    main()

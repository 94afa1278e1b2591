"""The ``fungrad`` command line: ``fungrad train`` and ``fungrad check``.

``fungrad train`` with no arguments trains an MLP on the bundled handwritten digits and writes
a checkpoint, the history, the config and a plot to the output folder. ``fungrad check`` holds
the backprop engine against ``jax.grad`` on random architectures on whatever backend is present.
A user mistake prints one line and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_OPTIMIZERS = ("gd", "sgd", "momentum", "nesterov", "ema", "adam")


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line instead of usage + traceback
        raise UsageError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------- argument types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def _int_list(text: str) -> list[int]:
    if text.strip() in ("", "none"):
        return []
    try:
        values = [int(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 64,32, got {text!r}"
        ) from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return values


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.01,0.1, got {text!r}"
        ) from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected finite learning rates > 0, got {text!r}")
    return values


def _devices(text: str) -> int | str:
    return "all" if text == "all" else _positive_int(text)


def _stop_spec(text: str) -> str:
    _parse_stop(text)  # validate early; the condition itself is built later
    return text


def _parse_stop(text: str):
    from fungrad import stopping

    kind, _, rest = text.partition(":")
    parts = rest.split(":") if rest else []
    try:
        if kind == "max_epochs" and len(parts) == 1:
            return stopping.max_epochs(int(parts[0]))
        if kind == "target" and len(parts) in (2, 3):
            return stopping.target(parts[0], float(parts[1]), *(parts[2:] or ["min"]))
        if kind == "plateau" and len(parts) == 3:
            return stopping.plateau(parts[0], float(parts[1]), int(parts[2]))
        if kind == "grad_norm_below" and len(parts) == 1:
            return stopping.grad_norm_below(float(parts[0]))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None
    raise argparse.ArgumentTypeError(
        f"unknown stop condition {text!r}; expected max_epochs:N, target:METRIC:VALUE[:min|max], "
        "plateau:METRIC:TOL:PATIENCE or grad_norm_below:TOL"
    )


# --------------------------------------------------------------------------- the parser


def build_parser() -> argparse.ArgumentParser:
    from fungrad.activations import activation_names
    from fungrad.losses import loss_names

    parser = _Parser(
        prog="fungrad",
        description="Train neural networks with fungrad, a functional JAX framework.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,check}", parser_class=_Parser)

    train = sub.add_parser(
        "train",
        help="train an MLP (by default on the bundled handwritten digits)",
        description="Train an MLP and write checkpoint.npz, history.json, config.json and "
        "plot.png to the output folder.",
    )
    data = train.add_argument_group("data")
    data.add_argument(
        "--data",
        default="digits",
        help="'digits' (bundled, 1797 8x8 images), a .npz with arrays x and y, a .csv, or an "
        "MNIST-style IDX images file, gzipped or not (default: digits)",
    )
    data.add_argument("--labels", help="the IDX labels file that goes with an IDX images file")
    data.add_argument(
        "--label-column",
        default="-1",
        help="the label column of a .csv, by name or index (default: -1, the last)",
    )
    data.add_argument(
        "--validation", type=_fraction, default=0.1, help="validation fraction (default: 0.1)"
    )
    data.add_argument("--test", type=_fraction, default=0.2, help="test fraction (default: 0.2)")
    data.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="do not standardise features (by default: mean and std of the training part)",
    )

    model = train.add_argument_group("model")
    model.add_argument(
        "--hidden",
        type=_int_list,
        default=[64],
        help="hidden layer widths, e.g. 128,64 (default: 64)",
    )
    model.add_argument(
        "--activation",
        default="relu",
        choices=activation_names(),
        help="hidden activation (default: relu)",
    )
    model.add_argument(
        "--output-activation",
        default="identity",
        choices=activation_names(),
        help="output activation (default: identity; the losses take logits)",
    )
    model.add_argument(
        "--loss",
        default="auto",
        choices=("auto", *loss_names()),
        help="training loss (default: auto: softmax_cross_entropy for class labels, l2 otherwise)",
    )
    model.add_argument(
        "--dtype", default="float32", choices=("float32", "float64"), help="parameter dtype"
    )

    optimization = train.add_argument_group("optimization")
    optimization.add_argument(
        "--optimizer",
        default="momentum",
        choices=_OPTIMIZERS,
        help="update rule: gd, sgd, momentum (heavy ball), nesterov, ema (the lesson's momentum), "
        "adam (default: momentum)",
    )
    optimization.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=None,
        help="step size (default: 0.05, adam 0.001)",
    )
    optimization.add_argument(
        "--beta", type=_fraction, default=0.9, help="momentum coefficient in [0, 1) (default: 0.9)"
    )
    optimization.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="minibatch size (default: 32; gd always uses the full batch)",
    )
    optimization.add_argument(
        "--epochs", type=_positive_int, default=30, help="the most epochs (default: 30)"
    )
    optimization.add_argument(
        "--stop",
        action="append",
        type=_stop_spec,
        default=[],
        help="a stop condition, repeatable: max_epochs:N, target:METRIC:VALUE[:min|max], "
        "plateau:METRIC:TOL:PATIENCE, grad_norm_below:TOL (e.g. target:val_accuracy:0.97:max)",
    )
    optimization.add_argument(
        "--gradients",
        default="backprop",
        choices=("backprop", "autodiff"),
        help="gradient source: fungrad's hand-written backprop or jax.value_and_grad (default: backprop)",
    )
    optimization.add_argument(
        "--restarts",
        type=_positive_int,
        default=1,
        help="runs from different initial weights (default: 1)",
    )
    optimization.add_argument(
        "--learning-rates",
        type=_float_list,
        default=None,
        help="a grid of learning rates, e.g. 0.01,0.05,0.1; every restart runs each (vmapped)",
    )
    optimization.add_argument(
        "--devices",
        type=_devices,
        default=1,
        help="data-parallel devices: a number or 'all' (default: 1)",
    )
    optimization.add_argument(
        "--seed", type=int, default=0, help="seed for split, init and shuffling (default: 0)"
    )

    output = train.add_argument_group("output")
    output.add_argument(
        "--out",
        type=Path,
        default=Path("runs/fungrad"),
        help="output folder (default: runs/fungrad)",
    )
    output.add_argument(
        "--resume", type=Path, help="continue from a checkpoint.npz for --epochs more epochs"
    )
    output.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    output.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    output.add_argument(
        "--no-plot", dest="plot", action="store_false", help="do not write plot.png"
    )

    check = sub.add_parser(
        "check",
        help="check the backprop engine against jax.grad on this machine's backend",
        description="Compare fungrad's hand-written gradients with jax.value_and_grad on random "
        "architectures (every activation and loss) and print the largest relative errors. "
        "Exits with status 1 on disagreement.",
    )
    check.add_argument(
        "--trials",
        type=_positive_int,
        default=4,
        help="random architectures, each checked with every activation and loss (default: 4)",
    )
    check.add_argument(
        "--dtype",
        default="float64",
        choices=("float64", "float32"),
        help="precision (default: float64)",
    )
    check.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    check.add_argument(
        "--tolerance",
        type=_positive_float,
        default=None,
        help="largest relative error allowed (default: 1e-8 float64, 2e-3 float32)",
    )
    return parser


# --------------------------------------------------------------------------- train


def _config(args: argparse.Namespace) -> dict[str, Any]:
    config = {
        name: (str(value) if isinstance(value, Path) else value)
        for name, value in vars(args).items()
        if name not in ("command", "resume", "quiet", "json", "out", "plot")
    }
    if config["learning_rate"] is None:
        config["learning_rate"] = 0.001 if args.optimizer == "adam" else 0.05
    return config


def _optimizer_factory(config):
    from fungrad import optim

    name, beta = config["optimizer"], config["beta"]
    factories = {
        "gd": optim.gd,
        "sgd": optim.sgd,
        "momentum": lambda lr: optim.momentum(lr, beta, variant="heavy_ball"),
        "nesterov": lambda lr: optim.momentum(lr, beta, variant="nesterov"),
        "ema": lambda lr: optim.momentum(lr, beta, variant="ema"),
        "adam": optim.adam,
    }
    return factories[name]


def _prepare_data(config):
    import numpy as np

    from fungrad import data

    label_column: int | str = config["label_column"]
    if isinstance(label_column, str) and label_column.lstrip("-").isdigit():
        label_column = int(label_column)
    dataset = data.load(config["data"], label_column=label_column, labels=config["labels"])
    parts = data.split(
        dataset.x,
        dataset.y,
        seed=config["seed"],
        validation=config["validation"],
        test=config["test"],
    )
    if config["standardize"]:
        standardize = data.fit_standardizer(parts.x_train)
        parts = parts._replace(
            x_train=standardize(parts.x_train),
            x_val=standardize(parts.x_val),
            x_test=standardize(parts.x_test),
        )
    dtype = np.float64 if config["dtype"] == "float64" else np.float32
    parts = parts._replace(
        **{name: getattr(parts, name).astype(dtype) for name in ("x_train", "x_val", "x_test")}
    )
    return dataset, parts


def _resolve_loss(config, dataset):
    if config["loss"] != "auto":
        return config["loss"]
    return "softmax_cross_entropy" if dataset.n_classes is not None else "l2"


def _output_width(loss, dataset):
    import numpy as np

    if dataset.n_classes is not None and loss in ("softmax_cross_entropy",):
        return dataset.n_classes
    if dataset.n_classes == 2 and loss == "sigmoid_binary_cross_entropy":
        return 1
    y = np.asarray(dataset.y)
    if dataset.n_classes is not None:
        raise UsageError(
            f"--loss: {loss} needs real-valued targets or two classes, but the data have "
            f"{dataset.n_classes} classes; use softmax_cross_entropy"
        )
    return 1 if y.ndim == 1 else y.shape[1]


def _mesh(devices):
    if devices == 1:
        return None
    import jax

    available = jax.devices()
    count = len(available) if devices == "all" else devices
    if count > len(available):
        raise UsageError(
            f"--devices: asked for {count} devices, but this machine has {len(available)}"
        )
    if count == 1:
        return None
    return jax.sharding.Mesh(available[:count], ("data",))


def _train(args) -> int:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from fungrad import checkpoint, mlp, train

    # The config and history come from this first read; the state is read again below, with
    # its template, once float64 is switched on if the run used it.
    saved = checkpoint.restore(args.resume) if args.resume is not None else None
    if saved is not None:
        config = dict(saved.config)
        config["epochs"] = args.epochs
    else:
        config = _config(args)
    if config["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    start = time.perf_counter()
    dataset, parts = _prepare_data(config)
    loss = _resolve_loss(config, dataset)
    config["loss"] = loss
    sizes = [dataset.x.shape[1], *config["hidden"], _output_width(loss, dataset)]
    config["sizes"] = sizes
    dtype = jnp.float64 if config["dtype"] == "float64" else jnp.float32
    batch_size = (
        None if config["optimizer"] == "gd" else min(config["batch_size"], len(parts.x_train))
    )
    stops = [_parse_stop(spec) for spec in config["stop"]]
    validation = (parts.x_val, parts.y_val) if len(parts.x_val) else None
    factory = _optimizer_factory(config)
    mesh = _mesh(args.devices)
    per_step = batch_size or len(parts.x_train)
    if mesh is not None and per_step % mesh.size:
        option = "--batch-size" if batch_size else "--optimizer gd (full batch)"
        raise UsageError(
            f"{option}: {per_step} samples per step cannot be split evenly over "
            f"--devices {mesh.size}; use a batch size that is a multiple of {mesh.size}"
        )
    common = dict(
        loss=loss,
        epochs=config["epochs"],
        batch_size=batch_size,
        activation=config["activation"],
        output_activation=config["output_activation"],
        gradients=config["gradients"],
        stop=stops or None,
        validation=validation,
    )
    if mesh is not None:
        common["mesh"] = mesh
    key = jax.random.key(config["seed"])
    init_key, train_key = jax.random.split(key)
    learning_rates = config["learning_rates"]
    restarts = config["restarts"]
    args.out.mkdir(parents=True, exist_ok=True)

    def init_params(k):
        return mlp.init(k, sizes, dtype=dtype, activation=config["activation"])

    if restarts == 1 and not learning_rates:
        optimizer = factory(config["learning_rate"])
        params = init_params(init_key)
        initial_state = None
        if saved is not None:
            template = train.TrainState(
                params, optimizer.init(params), jnp.zeros((), jnp.int32), train_key
            )
            initial_state = checkpoint.restore(args.resume, like=template).state
        result = _fit_with_progress(
            args, train, params, parts, common, optimizer, train_key, initial_state
        )
        history = {name: values.tolist() for name, values in result.history.items()}
        if saved is not None:
            history = {
                name: list(np.asarray(saved.history.get(name, []))) + values
                for name, values in history.items()
            }
        best_params, state, stop_reason, epochs_run = (
            result.params,
            result.state,
            result.stop_reason,
            result.epochs_run,
        )
        runs_history = [
            {"learning_rate": config["learning_rate"], "seed": config["seed"], "history": history}
        ]
    else:
        if saved is not None:
            raise UsageError("--resume: resuming is supported for single runs, not restarts")
        grid = learning_rates or [config["learning_rate"]]
        run_keys = jax.random.split(init_key, restarts)
        starts = [init_params(k) for k in run_keys for _ in grid]
        rates = [lr for _ in run_keys for lr in grid]
        if not args.quiet and not args.json:
            print(f"training {len(starts)} runs as one vmapped program ...", file=sys.stderr)
        result = train.fit_restarts(
            starts,
            parts.x_train,
            parts.y_train,
            optimizer=factory,
            learning_rates=rates,
            key=train_key,
            **common,
        )
        best = result.best_index
        best_params = result.best_params
        state = jax.tree.map(lambda a: a[best], result.state)
        stop_reason = result.stop_reasons[best]
        epochs_run = int(result.epochs_run[best])
        runs_history = [
            {
                "learning_rate": rates[r],
                "restart": r // len(grid),
                "stop_reason": result.stop_reasons[r],
                "history": {
                    name: values[r, : result.epochs_run[r]].tolist()
                    for name, values in result.history.items()
                },
            }
            for r in range(len(starts))
        ]
        history = runs_history[best]["history"]
        config["best_run"] = best
        config["learning_rate"] = rates[best]
    wall = time.perf_counter() - start

    evaluation = {
        "train": train.evaluate(
            best_params,
            parts.x_train,
            parts.y_train,
            loss=loss,
            activation=config["activation"],
            output_activation=config["output_activation"],
        ),
    }
    if len(parts.x_test):
        evaluation["test"] = train.evaluate(
            best_params,
            parts.x_test,
            parts.y_test,
            loss=loss,
            activation=config["activation"],
            output_activation=config["output_activation"],
        )
    checkpoint_path = checkpoint.save(
        args.out / "checkpoint.npz", state, config=config, history=history
    )
    _write_json(args.out / "config.json", config)
    _write_json(
        args.out / "history.json", {"runs": runs_history, "best_run": config.get("best_run", 0)}
    )
    if args.plot:
        _plot(args.out / "plot.png", runs_history, config.get("best_run", 0))
    summary = {
        "data": config["data"],
        "sizes": sizes,
        "loss": loss,
        "optimizer": config["optimizer"],
        "learning_rate": config["learning_rate"],
        "epochs_run": epochs_run,
        "stop_reason": stop_reason,
        "wall_time_s": round(wall, 3),
        "backend": jax.default_backend(),
        "devices": 1 if mesh is None else mesh.size,
        "runs": len(runs_history),
        "checkpoint": str(checkpoint_path),
        **{
            f"{part}_{name}": value
            for part, metrics in evaluation.items()
            for name, value in metrics.items()
        },
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        _print_summary(summary)
    return 0


def _fit_with_progress(args, train, params, parts, common, optimizer, key, initial_state):
    bar = None
    if not args.quiet and not args.json:
        from tqdm.auto import tqdm

        bar = tqdm(total=common["epochs"], desc="epochs", unit="epoch", file=sys.stderr)

    def callback(epoch, metrics):
        if bar is None:
            return
        shown = {name: f"{value:.4g}" for name, value in metrics.items() if name != "grad_norm"}
        bar.set_postfix(shown, refresh=False)
        bar.update(1)

    try:
        return train.fit(
            params,
            parts.x_train,
            parts.y_train,
            optimizer=optimizer,
            key=key,
            callback=callback,
            initial_state=initial_state,
            **common,
        )
    finally:
        if bar is not None:
            bar.close()


def _write_json(path: Path, value) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, default=float) + "\n")
    temporary.replace(path)


def _plot(path: Path, runs, best: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_accuracy = any("accuracy" in run["history"] for run in runs)
    figure, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(11 if has_accuracy else 6, 4))
    axes = list(axes) if has_accuracy else [axes]
    for index, run in enumerate(runs):
        label = f"lr={run['learning_rate']:g}" + (
            f" restart {run['restart']}" if "restart" in run else ""
        )
        width = 2.0 if index == best else 1.0
        for axis, metric in zip(axes, ("loss", "accuracy"), strict=False):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = run["history"].get(prefix + metric)
                if values:
                    epochs = range(1, len(values) + 1)
                    name = "train" if not prefix else "validation"
                    axis.plot(
                        epochs,
                        values,
                        style,
                        linewidth=width,
                        label=f"{name} {label}" if len(runs) > 1 else name,
                    )
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=False):
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_yscale("log")
    figure.tight_layout()
    temporary = path.with_name(path.stem + ".tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(path)


def _print_summary(summary) -> None:
    lines = [
        f"data          {summary['data']}  (MLP {'-'.join(map(str, summary['sizes']))}, {summary['loss']})",
        f"optimizer     {summary['optimizer']}, learning rate {summary['learning_rate']:g}",
        f"epochs run    {summary['epochs_run']}  ({summary['stop_reason']})",
    ]
    for part in ("train", "test"):
        if f"{part}_loss" in summary:
            accuracy = summary.get(f"{part}_accuracy")
            shown = f"  accuracy {accuracy:.4f}" if accuracy is not None else ""
            lines.append(f"{part:<13} loss {summary[f'{part}_loss']:.4g}{shown}")
    lines += [
        f"wall time     {summary['wall_time_s']:.2f} s",
        f"backend       {summary['backend']} ({summary['devices']} device(s))",
        f"checkpoint    {summary['checkpoint']}",
    ]
    print("\n".join(lines))


# --------------------------------------------------------------------------- check


def _check(args) -> int:
    import jax

    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from fungrad import backprop, losses, mlp
    from fungrad.activations import activation_names

    dtype = jnp.float64 if args.dtype == "float64" else jnp.float32
    tolerance = args.tolerance or (1e-8 if args.dtype == "float64" else 2e-3)
    pairs = [(a, name) for a in activation_names() for name in losses.loss_names()]

    def relative_error(ours, reference):
        """Largest difference over the loss and all gradient leaves, each relative to its scale.

        Gradients are measured against the largest reference gradient entry of the whole
        network: a leaf that is zero up to rounding (a dead unit) has no scale of its own.
        """
        (value, grads), (ref_value, ref_grads) = ours, reference
        value_error = jnp.abs(value - ref_value) / jnp.maximum(jnp.abs(ref_value), 1e-30)
        pairs = list(zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True))
        scale = jnp.max(jnp.stack([jnp.max(jnp.abs(b)) for _, b in pairs]))
        error = jnp.max(jnp.stack([jnp.max(jnp.abs(a - b)) for a, b in pairs]))
        return jnp.maximum(value_error, error / jnp.maximum(scale, 1e-30))

    @jax.jit
    def compare(params, x, targets):
        """Every activation and loss on one architecture: one compiled program."""
        worst = []
        for activation, name in pairs:
            loss, y = losses.get_loss(name), targets[name]

            def objective(p, loss=loss, y=y, activation=activation):
                return jnp.mean(loss.fn(mlp.apply(p, x, activation=activation), y))

            ours = backprop.value_and_grad(params, x, y, activation=activation, loss=loss)
            worst.append(relative_error(ours, jax.value_and_grad(objective)(params)))
        return jnp.stack(worst)

    rng = np.random.default_rng(args.seed)
    worst = np.zeros(len(pairs))
    for _ in range(args.trials):
        depth = int(rng.integers(1, 5))
        sizes = [int(n) for n in rng.integers(1, 33, size=depth + 1)]
        sizes[-1] = max(sizes[-1], 2)
        batch = int(rng.integers(1, 17))
        params = mlp.init(jax.random.key(int(rng.integers(2**31))), sizes, dtype=dtype)
        x = jnp.asarray(rng.normal(size=(batch, sizes[0])), dtype)
        real = jnp.asarray(rng.normal(size=(batch, sizes[-1])), dtype)
        targets = {
            "l2": real,
            "mse": real,
            "softmax_cross_entropy": jnp.asarray(rng.integers(0, sizes[-1], size=batch)),
            "sigmoid_binary_cross_entropy": (real > 0).astype(dtype),
        }
        worst = np.maximum(worst, np.asarray(compare(params, x, targets)))
    device = jax.devices()[0]
    print(
        f"backend {jax.default_backend()} ({device.device_kind}), {args.dtype}, "
        f"{args.trials} random networks, tolerance {tolerance:g}"
    )
    print(f"{'activation':<12} {'loss':<30} {'max relative error':>20}")
    failed = 0
    for (activation, name), error in zip(pairs, worst, strict=True):
        flag = "" if error <= tolerance else "  FAIL"
        failed += bool(flag)
        print(f"{activation:<12} {name:<30} {error:>20.3e}{flag}")
    if failed:
        print(f"{failed} of {len(pairs)} rows disagree with jax.grad beyond {tolerance:g}")
        return 1
    print(f"all {len(pairs)} rows agree with jax.grad")
    return 0


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from fungrad.checkpoint import CheckpointError

    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return _train(args) if args.command == "train" else _check(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (CheckpointError, ValueError, TypeError, OSError) as error:
        if os.environ.get("FUNGRAD_DEBUG"):
            raise
        print(f"fungrad: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fungrad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

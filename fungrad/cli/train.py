"""``fungrad train``: load the data, fit an MLP (or many at once), evaluate, write the run.

The steps, in order: the config (from the arguments, or from the checkpoint being resumed),
the data split and standardised, the loss and the layer sizes, the fit options (batch size,
stop conditions, validation, devices), one run or vmapped restarts, the evaluation of the
best parameters, and the files: ``checkpoint.npz``, ``config.json``, ``history.json`` and
``plot.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from fungrad.cli import UsageError
from fungrad.cli.outputs import plot, print_summary, write_json
from fungrad.cli.parser import parse_stop

__all__ = ["run_train"]


class _Outcome(NamedTuple):
    """The trained result the rest of the command needs, for one run or the best restart."""

    best_params: Any
    state: Any
    stop_reason: str
    epochs_run: int
    history: dict[str, list[float]]
    runs_history: list[dict[str, Any]]


def run_train(args: argparse.Namespace) -> int:
    """Run ``fungrad train`` with parsed arguments and return the exit status.

    Args:
        args: the parsed ``train`` arguments (see ``fungrad train --help``).

    Returns:
        0 when the run was trained and written.

    Raises:
        UsageError: for options that do not fit the data or the machine.
        ValueError: from loading the data or training, naming what was wrong.
    """
    import jax

    config, saved = _load_config(args)
    if config["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    start = time.perf_counter()
    dataset, parts = _prepare_data(config)
    loss = _resolve_loss(config, dataset)
    config["loss"] = loss
    config["sizes"] = [dataset.x.shape[1], *config["hidden"], _output_width(loss, dataset)]
    common, mesh = _fit_options(args, config, parts)
    args.out.mkdir(parents=True, exist_ok=True)
    if config["restarts"] == 1 and not config["learning_rates"]:
        outcome = _single_run(args, config, saved, parts, common)
    else:
        if saved is not None:
            raise UsageError("--resume: resuming is supported for single runs, not restarts")
        outcome = _restarts(args, config, parts, common)
    wall = time.perf_counter() - start
    evaluation = _evaluate(config, outcome.best_params, parts)
    written = _write_outputs(args, config, outcome)
    summary = _summary(config, outcome, evaluation, wall, mesh, written[0])
    if args.json:
        print(json.dumps(summary, indent=2))
    elif not args.quiet:
        _print_for_people(summary, config, outcome, written)
    return 0


# --------------------------------------------------------------------------- config and data


def _load_config(args: argparse.Namespace):
    """The run's config and the checkpoint being resumed (``None`` for a fresh run).

    A resumed run keeps its saved config, with ``--epochs`` more epochs; its state is read
    again later, with its template, once float64 is switched on if the run used it.
    """
    from fungrad import checkpoint

    saved = checkpoint.restore(args.resume) if args.resume is not None else None
    if saved is not None:
        config = dict(saved.config)
        config["epochs"] = args.epochs
        return config, saved
    config = {
        name: (str(value) if isinstance(value, Path) else value)
        for name, value in vars(args).items()
        if name not in ("command", "resume", "quiet", "json", "out", "plot")
    }
    if config["learning_rate"] is None:
        config["learning_rate"] = 0.001 if args.optimizer == "adam" else 0.05
    return config, None


def _prepare_data(config):
    """Load, split, standardise (on the training part's statistics) and cast the data."""
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


# --------------------------------------------------------------------------- model and loss


def _resolve_loss(config, dataset) -> str:
    """``--loss auto``: softmax cross-entropy for class labels, l2 for real targets."""
    if config["loss"] != "auto":
        return config["loss"]
    return "softmax_cross_entropy" if dataset.n_classes is not None else "l2"


def _output_width(loss: str, dataset) -> int:
    """The last layer's width: one unit per class, one for a binary sigmoid, else the targets'."""
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


def _optimizer_factory(config):
    """``learning_rate -> optax transformation`` for ``--optimizer`` (and ``--beta``)."""
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


def _init_params(config, key):
    import jax.numpy as jnp

    from fungrad import mlp

    dtype = jnp.float64 if config["dtype"] == "float64" else jnp.float32
    return mlp.init(key, config["sizes"], dtype=dtype, activation=config["activation"])


def _keys(config):
    """``(init_key, train_key)``, both from ``--seed``."""
    import jax

    return jax.random.split(jax.random.key(config["seed"]))


def _mesh(devices):
    """A one-axis ``("data",)`` mesh for ``--devices``, or ``None`` for one device."""
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


def _fit_options(args, config, parts):
    """The keyword arguments ``fit`` and ``fit_restarts`` share, and the mesh (or ``None``)."""
    batch_size = (
        None if config["optimizer"] == "gd" else min(config["batch_size"], len(parts.x_train))
    )
    stops = [parse_stop(spec) for spec in config["stop"]]
    validation = (parts.x_val, parts.y_val) if len(parts.x_val) else None
    mesh = _mesh(args.devices)
    per_step = batch_size or len(parts.x_train)
    if mesh is not None and per_step % mesh.size:
        option = "--batch-size" if batch_size else "--optimizer gd (full batch)"
        raise UsageError(
            f"{option}: {per_step} samples per step cannot be split evenly over "
            f"--devices {mesh.size}; use a batch size that is a multiple of {mesh.size}"
        )
    common = dict(
        loss=config["loss"],
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
    return common, mesh


# --------------------------------------------------------------------------- training


def _single_run(args, config, saved, parts, common) -> _Outcome:
    """One run with a progress bar; a resumed run continues its state and its history."""
    import jax.numpy as jnp
    import numpy as np

    from fungrad import checkpoint, train

    init_key, train_key = _keys(config)
    optimizer = _optimizer_factory(config)(config["learning_rate"])
    params = _init_params(config, init_key)
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
    runs_history = [
        {"learning_rate": config["learning_rate"], "seed": config["seed"], "history": history}
    ]
    return _Outcome(
        result.params, result.state, result.stop_reason, result.epochs_run, history, runs_history
    )


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


def _restarts(args, config, parts, common) -> _Outcome:
    """Every restart x learning rate as one vmapped program; records the best in ``config``.

    Sets ``config["best_run"]`` and ``config["learning_rate"]`` (the best run's rate).
    """
    import jax

    from fungrad import train

    init_key, train_key = _keys(config)
    grid = config["learning_rates"] or [config["learning_rate"]]
    run_keys = jax.random.split(init_key, config["restarts"])
    starts = [_init_params(config, k) for k in run_keys for _ in grid]
    rates = [lr for _ in run_keys for lr in grid]
    if not args.quiet and not args.json:
        print(f"training {len(starts)} runs as one vmapped program ...", file=sys.stderr)
    result = train.fit_restarts(
        starts,
        parts.x_train,
        parts.y_train,
        optimizer=_optimizer_factory(config),
        learning_rates=rates,
        key=train_key,
        **common,
    )
    best = result.best_index
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
    config["best_run"] = best
    config["learning_rate"] = rates[best]
    return _Outcome(
        result.best_params,
        jax.tree.map(lambda a: a[best], result.state),
        result.stop_reasons[best],
        int(result.epochs_run[best]),
        runs_history[best]["history"],
        runs_history,
    )


# --------------------------------------------------------------------------- results


def _evaluate(config, params, parts) -> dict[str, dict[str, float]]:
    """``{"train": metrics, "test": metrics}`` of ``params`` (no test part when it is empty)."""
    from fungrad import train

    options = dict(
        loss=config["loss"],
        activation=config["activation"],
        output_activation=config["output_activation"],
    )
    evaluation = {"train": train.evaluate(params, parts.x_train, parts.y_train, **options)}
    if len(parts.x_test):
        evaluation["test"] = train.evaluate(params, parts.x_test, parts.y_test, **options)
    return evaluation


def _write_outputs(args, config, outcome: _Outcome) -> list[Path]:
    """Write the checkpoint, config, history and plot; return the paths written."""
    from fungrad import checkpoint

    checkpoint_path = checkpoint.save(
        args.out / "checkpoint.npz", outcome.state, config=config, history=outcome.history
    )
    written = [Path(checkpoint_path), args.out / "config.json", args.out / "history.json"]
    write_json(written[1], config)
    best = config.get("best_run", 0)
    write_json(written[2], {"runs": outcome.runs_history, "best_run": best})
    if args.plot:
        runs = [
            {
                "label": _run_label(run),
                "history": run["history"],
                "diverged": run.get("stop_reason", outcome.stop_reason).startswith("diverged"),
            }
            for run in outcome.runs_history
        ]
        sizes = "-".join(str(size) for size in config["sizes"])
        title = f"{Path(str(config['data'])).name}: MLP {sizes}, {config['loss']}"
        plot(args.out / "plot.png", runs, best, title=title)
        written.append(args.out / "plot.png")
    return written


def _run_label(run: dict[str, Any]) -> str:
    label = f"lr={run['learning_rate']:g}"
    return label + (f", restart {run['restart']}" if "restart" in run else "")


def _runs_table(runs_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the restarts table: each run's final validation loss (or training loss)."""
    rows = []
    for index, run in enumerate(runs_history):
        history = run["history"]
        values = history.get("val_loss") or history.get("loss") or [None]
        rows.append(
            {
                "run": index,
                "learning_rate": run["learning_rate"],
                "best_value": values[-1],
                "epochs": len(history.get("loss", [])),
                "stop_reason": run.get("stop_reason"),
                "diverged": str(run.get("stop_reason", "")).startswith("diverged"),
            }
        )
    return rows


def _print_for_people(summary, config, outcome: _Outcome, written: list[Path]) -> None:
    shown = {key: value for key, value in summary.items() if key != "checkpoint"}
    shown["files"] = [str(path) for path in written]
    if len(outcome.runs_history) > 1:
        shown["runs_table"] = _runs_table(outcome.runs_history)
        shown["best_run"] = config["best_run"]
        shown["best_metric"] = "val_loss" if "val_loss" in outcome.history else "loss"
    print_summary(shown)


def _summary(config, outcome: _Outcome, evaluation, wall: float, mesh, checkpoint_path):
    """The summary printed by ``--json`` (and, for people, by ``print_summary``)."""
    import jax

    return {
        "data": config["data"],
        "sizes": config["sizes"],
        "loss": config["loss"],
        "optimizer": config["optimizer"],
        "learning_rate": config["learning_rate"],
        "epochs_run": outcome.epochs_run,
        "stop_reason": outcome.stop_reason,
        "wall_time_s": round(wall, 3),
        "backend": jax.default_backend(),
        "devices": 1 if mesh is None else mesh.size,
        "runs": len(outcome.runs_history),
        "checkpoint": str(checkpoint_path),
        **{
            f"{part}_{name}": value
            for part, metrics in evaluation.items()
            for name, value in metrics.items()
        },
    }

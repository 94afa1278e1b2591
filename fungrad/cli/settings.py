"""A run's settings: from the command line for a new run, from its checkpoint when resumed.

A resumed run keeps every training setting it was started with. ``--epochs`` sets a new
total cap, and the options that change nothing in the numbers (``--save-every``,
``--devices``, ``--quiet``, ``--json``, ``--no-plot``) may differ; any other training option
given with a value other than the saved one is a usage error naming both values
(``--max-bytes``, a limit on reading, may differ too).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fungrad.cli import UsageError

RUN_FORMAT = "fungrad-run"

TRAINING = (
    "model", "data", "labels", "label_column", "task", "columns", "drop_columns", "missing",
    "delimiter", "header", "validation", "test", "standardize",
    "standardize_targets", "hidden",
    "activation", "output_activation", "loss", "dtype", "optimizer", "learning_rate", "beta",
    "batch_size", "stop", "gradients", "restarts", "learning_rates", "seed", "keep_best",
)  # fmt: skip
FREE = (
    "epochs", "save_every", "max_bytes", "devices", "quiet", "json", "plot", "resume",
    "compile_cache",
)  # fmt: skip
_FLAGS = {
    "standardize": "--no-standardize",
    "standardize_targets": "--no-standardize-targets",
    "plot": "--no-plot",
    "header": "--no-header",
    "compile_cache": "--no-compile-cache",
}


def flag(name: str) -> str:
    """The option a setting comes from: ``learning_rate`` -> ``--learning-rate``."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _value(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _file(value: str | None) -> str | None:
    """A data file as an absolute path (a bundled data set's name stays a name), so that the
    run can be resumed and evaluated from any folder."""
    from fungrad.data import BUNDLED

    if value is None or value in BUNDLED or not Path(value).exists():
        return value
    return str(Path(value).resolve())


def _setting(args: argparse.Namespace, name: str) -> Any:
    """The value of a training setting as the run records it."""
    if name == "keep_best":
        return _keep_best(args)
    if name == "gradients":
        return _gradients(args)
    if name in ("data", "labels"):
        return _file(_value(getattr(args, name)))
    return _value(getattr(args, name))


def _shown(name: str, value: Any) -> str:
    return "off" if name == "keep_best" and value is None else repr(value)


def _gradients(args: argparse.Namespace) -> str:
    """``--gradients`` resolved: ``autodiff`` is ``jax``; left out, ``backprop`` for an MLP
    and ``graph`` for a CNN (the MLP engine knows only dense layers)."""
    model = getattr(args, "model", "mlp")
    gradients = {"autodiff": "jax"}.get(args.gradients, args.gradients)
    if gradients is None:
        return "graph" if model == "cnn" else "backprop"
    if gradients == "backprop" and model != "mlp":
        raise UsageError(
            f"--gradients: backprop is the MLP engine; a {model} trains with graph or jax"
        )
    return gradients


def _keep_best(args: argparse.Namespace) -> str | None:
    if args.keep_best is False:
        return None
    metric = args.keep_best or ("val_loss" if args.validation > 0 else None)
    if metric and metric.startswith("val_") and args.validation == 0:
        raise UsageError(f"--keep-best: {metric} needs a validation split (--validation > 0)")
    return metric


def new_config(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a new run, resolved (default learning rate, keep-best metric)."""
    config: dict[str, Any] = {"format": RUN_FORMAT, "version": 1}
    for name in (*TRAINING, "epochs", "save_every", "max_bytes"):
        config[name] = _setting(args, name)
    return config


def default_learning_rate(config: dict[str, Any]) -> float:
    """``--learning-rate`` left out: 0.001 for adam; else 0.05, 0.01 for a CNN (at 0.05 its
    training swings), or 0.02 for a regression (``l2``/``mse``), which on standardised targets
    diverges at 0.05 on real tables (a Boston-housing-like set at epoch 4)."""
    if config["optimizer"] == "adam":
        return 0.001
    if config.get("model") == "cnn":
        return 0.01
    return 0.02 if config["loss"] in ("l2", "mse") else 0.05


_MODEL_DEFAULTS = {"model": "mlp"}
_TABLE_DEFAULTS = {
    "task": "auto", "columns": None, "drop_columns": None, "missing": "error",
    "delimiter": None, "header": None,
}  # fmt: skip
"""The table options of a run saved before they existed: the defaults."""


def _upgraded(saved: dict, path: Path) -> dict:
    """A saved config in today's layout; a checkpoint without command-line settings is refused."""
    if saved.get("format") == RUN_FORMAT:
        # Runs saved before targets were standardised trained on the targets as they were.
        saved = {"standardize_targets": False, **_MODEL_DEFAULTS, **_TABLE_DEFAULTS, **saved}
        return {
            **saved,
            "gradients": {"autodiff": "jax"}.get(saved["gradients"], saved["gradients"]),
        }
    if "fit" in saved or "sizes" not in saved or "data" not in saved:
        raise UsageError(
            f"--resume: {path} holds no command-line settings (was it saved from the Python "
            "API?); continue it with fungrad.fit(..., initial_state=PATH)"
        )
    # A run folder written before run folders had a format marker.
    return {
        "format": RUN_FORMAT, "version": 1, "keep_best": None, "save_every": 10.0,
        "standardize_targets": False, **_MODEL_DEFAULTS, **_TABLE_DEFAULTS,
        **{k: v for k, v in saved.items() if k not in ("best_run",)},
    }  # fmt: skip


def resumed_config(
    args: argparse.Namespace, given: set[str], saved: dict, path: Path
) -> dict[str, Any]:
    """The saved settings, checked against the options given with ``--resume``."""
    config = _upgraded(saved, path)
    for name in ("out", "overwrite"):
        if name in given:
            raise UsageError(
                f"{flag(name)}: a resumed run continues in its own folder ({path}); leave it out"
            )
    for name in sorted(given & set(TRAINING)):
        value = _setting(args, name)
        if value != config.get(name):
            raise UsageError(
                f"{flag(name)}: the run in {path} was trained with "
                f"{_shown(name, config.get(name))}, got {_shown(name, value)}; a resumed run "
                "keeps its settings (start a new run to change them)"
            )
    for name in ("epochs", "save_every", "max_bytes"):
        if name in given:
            config[name] = getattr(args, name)
    return config

"""Reading a saved run: where its checkpoint is, which run and parameters predict, and what
its config says (the output head, the class labels, the feature and target scaling).

:mod:`fungrad.runs` builds a :class:`~fungrad.runs.Run` from these; a config that does not
make sense raises :class:`~fungrad.checkpoint.CheckpointError` naming the file.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fungrad import checkpoint, data, mlp
from fungrad.checkpoint import archive

# --------------------------------------------------------------------------- the checkpoint file


def checkpoint_file(path) -> Path:
    """The checkpoint file of a run folder, or ``path`` itself when it is a file."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"path: expected a run folder or checkpoint path, got {type(path).__name__}"
        )
    path = Path(path)
    if path.is_dir():
        if not (path / "checkpoint.npz").is_file():
            raise checkpoint.CheckpointError(
                f"{path}: not a run folder: it holds no checkpoint.npz"
            )
        return path / "checkpoint.npz"
    if not path.exists():
        raise checkpoint.CheckpointNotFoundError(f"{path}: no such run folder or checkpoint")
    return path


def params_dtype(path: str | os.PathLike) -> np.dtype:
    """The dtype of a saved run's parameters, read from the checkpoint's metadata alone.

    ``fungrad predict`` and ``fungrad evaluate`` switch on double precision when it says
    ``float64``, as ``fungrad train`` did for that run.

    Raises:
        CheckpointError: if ``path`` is neither a run folder nor a checkpoint.
    """
    file = checkpoint_file(path)
    with archive.open_archive(file) as opened:
        meta = archive.read_meta(opened, file)
    leaves = meta.get("leaves") or []
    dtypes = [leaf.get("dtype") for leaf in leaves if str(leaf.get("path")).startswith(".params")]
    return np.dtype(dtypes[0]) if dtypes else np.dtype(np.float32)


def read_checkpoint(path) -> tuple[Path, checkpoint.Checkpoint]:
    """The checkpoint file at ``path`` and its contents, checked to describe an MLP.

    Raises:
        CheckpointNotFoundError: if nothing is at ``path``.
        CheckpointError: for a folder without ``checkpoint.npz``, a damaged file, a checkpoint
            without a model description (``config["fit"]``) or of a model other than an MLP.
        ValueError: for a float64 run while JAX's double precision is off.
    """
    file = checkpoint_file(path)
    if params_dtype(file) == np.float64 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            f"{file}: the run's parameters are float64; switch on double precision first: "
            "jax.config.update('jax_enable_x64', True)"
        )
    saved = checkpoint.restore(file)
    fit = saved.config.get("fit")
    if not isinstance(fit, dict):
        raise checkpoint.CheckpointError(
            f"{file}: the checkpoint has no model description (config['fit']); load_run reads "
            "run folders of fungrad train and checkpoints of fit(..., checkpoint=...)"
        )
    if fit.get("model") not in ("mlp", "custom"):
        raise checkpoint.CheckpointError(
            f"{file}: the checkpoint holds a {fit.get('model')!r} model; load_run predicts "
            "with an MLP or a model function (model 'mlp' or 'custom')"
        )
    return file, saved


def model_function(config: dict, model: Callable | None, file: Path) -> Callable | None:
    """The model of a ``"custom"`` checkpoint: ``model`` if given, else the function its
    config names (``fungrad.cnn.apply``), imported; ``None`` for an MLP.

    Raises:
        CheckpointError: if the function cannot be imported and ``model`` is not given, or
            the run records no input width to predict on.
    """
    fit = config["fit"]
    if fit.get("model") == "mlp":
        return None
    if "n_features" not in (config.get("preprocessing") or {}):
        raise checkpoint.CheckpointError(
            f"{file}: a checkpoint of fit(model=...) records no input width to predict on; "
            "call the model on its parameters directly (checkpoint.restore(...).state.params)"
        )
    if model is not None:
        return model
    name = str(fit.get("function", ""))
    module, _, attribute = name.rpartition(".")
    try:
        found = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError):
        found = None
    if not callable(found):
        raise checkpoint.CheckpointError(
            f"{file}: the run's model function {name!r} cannot be imported; pass it: "
            "fungrad.load_run(path, model=apply_fn)"
        )
    return found


@contextlib.contextmanager
def damage_reported(file: Path) -> Iterator[None]:
    """Turn a malformed value met while reading ``file`` into a ``CheckpointError``."""
    try:
        yield
    except checkpoint.CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise checkpoint.CheckpointError(f"{file}: damaged run ({error})") from error


# --------------------------------------------------------------------------- the run that predicts


def select_run(config: dict, best) -> int:
    """Which of the stacked runs predicts: the saved ``best_run``, or the best by value."""
    if "best_run" in config:
        return int(config["best_run"])
    if best is None:
        return 0
    value = np.asarray(best.value, np.float64)
    score = value if best.mode == "min" else -value
    score = np.where(np.isfinite(score) & (np.asarray(best.epoch) > 0), score, np.inf)
    return int(np.argmin(score))


def history_of(history: dict, run: int | None, progress: dict) -> dict:
    """The history of one run, trimmed to the epochs it ran."""
    if run is None:
        return {name: np.asarray(values) for name, values in history.items()}
    epochs = np.asarray(progress["epoch"]).reshape(-1) if "epoch" in progress else None
    chosen = {}
    for name, values in history.items():
        row = np.asarray(values)[run] if np.ndim(values) == 2 else np.asarray(values)
        if epochs is not None and epochs.shape[0] > run:
            row = row[: int(epochs[run])]
        chosen[name] = row
    return chosen


def chosen_params(saved, run: int | None):
    """``(params, last_params, best_epoch)`` of the run that predicts."""
    pick = (
        (lambda tree: tree) if run is None else (lambda tree: jax.tree.map(lambda a: a[run], tree))
    )
    last = pick(saved.state.params)
    if saved.best is None:
        return last, last, None
    epoch = int(np.asarray(saved.best.epoch).reshape(-1)[0 if run is None else run])
    if epoch <= 0:
        return last, last, None
    return pick(saved.best.params), last, epoch


def choose(saved) -> tuple[dict, object, object, int | None]:
    """``(history, params, last_params, best_epoch)`` of the run that predicts.

    For stacked restarts that is the saved ``best_run`` (or the best by value); its history
    is trimmed to the epochs it ran.
    """
    is_mlp = saved.config["fit"].get("model") == "mlp"
    if is_mlp:
        stacked = jnp.ndim(saved.state.params[0]["w"]) == 3
    else:
        runs = saved.config.get("runs", 1)  # the number of runs (fungrad train)
        stacked = (runs if isinstance(runs, int) else len(runs)) > 1
    run = select_run(saved.config, saved.best) if stacked else None
    params, last, best_epoch = chosen_params(saved, run)
    if is_mlp:
        mlp.check_params(params)
    return history_of(saved.history, run, saved.progress), params, last, best_epoch


# --------------------------------------------------------------------------- what the config says


def output_head(loss: str, n_outputs: int, task: str) -> str | None:
    """What turns a classifier's outputs into scores; ``None`` for a regression."""
    if task != "classification":
        return None
    if loss == "sigmoid_binary_cross_entropy":
        return "sigmoid_pair" if n_outputs == 1 else "sigmoid"
    return "softmax"


def class_labels(saved: list | None, head: str | None, n_outputs: int, path: Path) -> list | None:
    """The class labels in output order: the saved ones, else ``0..C-1`` for a classifier."""
    if head is None or head == "sigmoid":  # regression, or independent sigmoid outputs
        return saved
    expected = 2 if head == "sigmoid_pair" else n_outputs
    if saved is None:
        return list(range(expected))
    if len(saved) != expected:
        raise checkpoint.CheckpointError(
            f"{path}: damaged run config: {len(saved)} classes for a model of {n_outputs} outputs"
        )
    return saved


def scaling(saved: dict | None, width: int, path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """A saved ``{"mean", "std"}`` as float32 arrays of ``width`` values, or ``None``."""
    if saved is None:
        return None
    mean, std = (np.asarray(saved[name], np.float32).reshape(-1) for name in ("mean", "std"))
    if mean.shape != (width,) or std.shape != (width,):
        raise checkpoint.CheckpointError(
            f"{path}: damaged run config: a scaling of {mean.shape[0]} means and "
            f"{std.shape[0]} standard deviations for {width} values"
        )
    return mean, std


def feature_names(saved: list | None, n_features: int, path: Path) -> list | None:
    """The saved feature column names, checked against the model's inputs."""
    if saved is not None and len(saved) != n_features:
        raise checkpoint.CheckpointError(
            f"{path}: damaged run config: {len(saved)} feature names for a model "
            f"of {n_features} inputs"
        )
    return saved


def label_column_of(config: dict) -> int | str:
    """The training file's label column: an index when it reads as an integer, else a name."""
    saved = str(config.get("label_column", "-1"))
    return int(saved) if saved.lstrip("-").isdigit() else saved


def class_indices(y: np.ndarray, classes: list) -> np.ndarray:
    """Each label's index in ``classes``; an unknown label raises, naming it."""
    if y.ndim != 1:
        raise ValueError(f"y: expected one class label per row, shape (n,), got {y.shape}")
    index = {label: i for i, label in enumerate(classes)}
    values, inverse = np.unique(y, return_inverse=True)
    mapped = np.empty(values.shape[0], np.int64)
    for i, value in enumerate(values):
        key = value.item() if isinstance(value, np.generic) else value
        if key not in index:
            shown = ", ".join(map(repr, classes[:10])) + (", ..." if len(classes) > 10 else "")
            raise ValueError(f"y: label {key!r} is not one of the run's classes ({shown})")
        mapped[i] = index[key]
    return mapped[inverse.reshape(-1)]


def saved_test_part(
    config: dict, label_column: int | str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The raw rows and original labels of the test part ``fungrad train`` held out.

    The run's data are loaded and split again with its saved settings (``data``, ``labels``,
    ``seed``, ``validation``, ``test``) and ``label_column``.

    Raises:
        ValueError: if the run was not written by ``fungrad train`` or kept no test part.
    """
    if config.get("format") != "fungrad-run":
        raise ValueError(
            f"{path}: the run records no training data (it was not written by "
            "fungrad train); evaluate it on labelled rows instead"
        )
    if not config.get("test"):
        raise ValueError(f"{path}: the run kept no test part (test=0)")
    dataset = data.load(
        config["data"], label_column=label_column, labels=config.get("labels"),
        **data.table_options(config),
    )  # fmt: skip
    parts = data.split(dataset.x, dataset.y, seed=config["seed"],
                       validation=config["validation"], test=config["test"])  # fmt: skip
    parts, dataset = data.training_levels(parts, dataset)
    y = parts.y_test
    return parts.x_test, y if dataset.classes is None else np.asarray(dataset.classes)[y]

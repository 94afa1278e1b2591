"""``fungrad train``: settings, data, folder checks, training that saves as it goes, results.

The steps: the settings (new, or those of the run being resumed), the data split and its
preprocessing fitted on the training part, the run folder claimed and checked (before
anything compiles), one run or vmapped restarts saving the whole run every ``--save-every``
seconds and at the end, then the evaluation of the saved run (the same computation as
``fungrad evaluate``), the plot and the summary. SIGINT/SIGTERM end the run at the next epoch
boundary, after saving (exit 130/143); a diverged run exits 3 with its last finite state saved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fungrad.cli import UsageError, folder
from fungrad.cli.prepare import parameter_count, prepare
from fungrad.cli.progress import Progress
from fungrad.cli.results import Outcome, finish
from fungrad.cli.settings import default_learning_rate, new_config, resumed_config
from fungrad.cli.signals import Interruption, interruptible
from fungrad.cli.warmup import warm_evaluation_in_background
from fungrad.cli.writer import RunWriter

__all__ = ["run_train"]


def run_train(args: argparse.Namespace) -> int:
    """Run ``fungrad train`` with parsed arguments and return the exit status.

    Raises:
        UsageError: for options that do not fit the data, the folder or the machine.
        ValueError: from loading the data or training, naming what was wrong.
    """
    with interruptible() as interruption:
        return _train(args, interruption)


def _say(args, text: str) -> None:
    """A status line for a person watching: only on a terminal, so errors stay one line."""
    if not args.quiet and not args.json and sys.stderr.isatty():
        print(text, file=sys.stderr, flush=True)


def _settings(args) -> tuple[dict, Path | None, Any]:
    """``(config, folder, saved)``: ``saved`` is the checkpoint being resumed, or ``None``."""
    if args.resume is None:
        return new_config(args), None, None
    from fungrad import checkpoint

    run_folder = folder.resume_folder(args.resume)
    checkpoint.remove_leftovers(run_folder)
    saved = checkpoint.restore(run_folder / "checkpoint.npz")
    config = resumed_config(args, getattr(args, "given", set()), saved.config, run_folder)
    _check_resumable(saved, config, run_folder, "epochs" in getattr(args, "given", set()))
    return config, run_folder, saved


def _check_resumable(saved, config, run_folder: Path, epochs_given: bool) -> None:
    """Refuse to resume a run that stopped for good, or that has no epochs left to run."""
    import numpy as np

    from fungrad.train.state import CAP

    codes = np.atleast_1d(saved.progress.get("code", 0))
    if np.all((codes != 0) & (codes != CAP)):
        raise UsageError(
            f"--resume: the run in {run_folder} already ended on its stop condition (or "
            "diverged); nothing to resume. Start a new run to train further"
        )
    done = _epochs_done(saved)
    if done >= config["epochs"]:
        asked = f"--epochs {config['epochs']} is not above" if epochs_given else "it has run"
        raise UsageError(
            f"--epochs: the run in {run_folder} has already trained {done} epochs and {asked} "
            f"its cap; pass --epochs N with N > {done} to train more"
        )


def _epochs_done(saved) -> int:
    if saved is None:
        return 0
    import numpy as np

    length = np.shape(saved.history.get("loss", []))[-1]
    return int(np.max(saved.progress.get("epoch", length)))


def _train(args, interruption: Interruption) -> int:
    _say(args, "fungrad train: starting JAX ...")  # on screen at once; importing JAX takes a while
    import jax

    from fungrad.cli.cache import use_compile_cache

    use_compile_cache(getattr(args, "compile_cache", True))
    config, run_folder, saved = _settings(args)
    if config["dtype"] == "float64":
        jax.config.update("jax_enable_x64", True)
    _say(args, f"loading {config['data']} ...")
    prepared = prepare(config)
    if not args.quiet:
        for note in prepared.notes:
            print(note, file=sys.stderr, flush=True)
    config.update(loss=prepared.loss, sizes=prepared.sizes, preprocessing=prepared.preprocessing)
    if config["learning_rate"] is None:
        config["learning_rate"] = default_learning_rate(config)
    claimed = run_folder is None and not (args.out is not None and args.out.exists())
    if run_folder is None:
        run_folder = folder.claim(args.out, args.overwrite)
    try:
        return _train_in(args, interruption, config, prepared, run_folder, saved)
    except BaseException:
        if claimed:
            folder.release(run_folder)
        raise


def _train_in(args, interruption, config, prepared, run_folder, saved) -> int:
    """Train into the claimed ``run_folder``."""
    runs = config["restarts"] * len(config["learning_rates"] or [0])
    copies = 4 if config["optimizer"] == "adam" else 3
    itemsize = {"float64": 8, "float32": 4}.get(config["dtype"], 2)
    size = folder.checkpoint_bytes(parameter_count(config), itemsize, copies, runs)
    folder.check(run_folder, 2 * size)
    common = _fit_options(config, prepared, args.devices)
    writer = RunWriter(run_folder, config, runs)
    _say(args, f"compiling and training; the run is saved in {folder.relative(run_folder)}")
    if args.plot:
        from fungrad.cli.plot import warm_up_in_background

        warm_up_in_background()
    progress = Progress(config["epochs"], _epochs_done(saved), _shown(args), interruption)
    try:
        outcome = _fit(config, prepared, writer, saved, dict(common, callback=progress))
    finally:
        progress.close()
        if writer.warm_up is not None:  # however training ended: no compile outlives the run
            writer.warm_up.join()
    return finish(args, config, prepared, writer, outcome, progress, interruption)


def _shown(args) -> bool:
    return not args.quiet and not args.json


# --------------------------------------------------------------------------- training


def _mesh(devices):
    """A one-axis ``("data",)`` mesh for ``--devices``, or ``None`` for one device."""
    import jax

    from fungrad import parallel

    if devices == 1:
        return None
    available = len(jax.devices())
    count = available if devices == "all" else devices
    if count > available:
        raise UsageError(f"--devices: asked for {count} devices, but this machine has {available}")
    return None if count == 1 else parallel.data_mesh(count)


def _fit_options(config, prepared, devices) -> dict[str, Any]:
    """The keyword arguments ``fit`` and ``fit_restarts`` share."""
    from fungrad import stopping

    parts = prepared.parts
    batch_size = (
        None if config["optimizer"] == "gd" else min(config["batch_size"], len(parts.x_train))
    )
    mesh = _mesh(devices)
    per_step = batch_size or len(parts.x_train)
    if mesh is not None and per_step % mesh.size:
        option = "--batch-size" if batch_size else "--optimizer gd (full batch)"
        raise UsageError(
            f"{option}: {per_step} samples per step cannot be split evenly over "
            f"--devices {mesh.size}; use a batch size that is a multiple of {mesh.size}"
        )
    if config.get("model", "mlp") == "cnn":
        from fungrad import cnn

        model = dict(model=cnn.apply)
    else:
        model = dict(activation=config["activation"], output_activation=config["output_activation"])
    return dict(
        loss=config["loss"], epochs=config["epochs"], batch_size=batch_size, **model,
        gradients=config["gradients"],
        stop=[stopping.parse(spec) for spec in config["stop"]] or None,
        validation=(parts.x_val, parts.y_val) if len(parts.x_val) else None,
        keep_best=config["keep_best"], mesh=mesh,
        save_every=config["save_every"],
    )  # fmt: skip


def _fit(config, prepared, writer, saved, common) -> Outcome:
    """One run, or every restart x learning rate as one vmapped program."""
    import jax
    import jax.numpy as jnp

    from fungrad import mlp, optim, train

    common["checkpoint"] = writer
    devices = 1 if common["mesh"] is None else common["mesh"].size
    init_key, train_key = jax.random.split(jax.random.key(config["seed"]))
    dtype = jnp.dtype(config["dtype"])
    resume = None if saved is None else writer.folder / "checkpoint.npz"

    def init(key):
        if config.get("model", "mlp") == "cnn":
            from fungrad import cnn

            n_features, c1, c2, outputs = config["sizes"]
            side = cnn.image_side(n_features)
            return cnn.init(key, side=side, n_outputs=outputs, channels=(c1, c2), dtype=dtype)
        return mlp.init(key, config["sizes"], dtype=dtype, activation=config["activation"])

    writer.warm_up = warm_evaluation_in_background(init, init_key, config, prepared)
    x, y = prepared.parts.x_train, prepared.parts.y_train
    if writer.runs == 1:
        optimizer = optim.from_name(
            config["optimizer"], config["learning_rate"], beta=config["beta"]
        )
        params = init(init_key) if saved is None else saved.state.params
        result = train.fit(
            params, x, y, optimizer=optimizer, key=train_key, initial_state=resume, **common
        )
        return Outcome(
            [result.stop_reason], 0, result.diverged, result.epochs_run, result.best_epoch,
            devices,
        )  # fmt: skip
    grid = config["learning_rates"] or [config["learning_rate"]]
    if saved is None:
        starts = [init(k) for k in jax.random.split(init_key, config["restarts"]) for _ in grid]
    else:
        starts = saved.state.params
    result = train.fit_restarts(
        starts, x, y, optimizer=optim.factory(config["optimizer"], beta=config["beta"]),
        learning_rates=[label["learning_rate"] for label in writer.labels], key=train_key,
        initial_state=resume, **common,
    )  # fmt: skip
    best = writer.best_run = result.best_index
    best_epoch = None if result.best_epochs is None else int(result.best_epochs[best])
    return Outcome(
        result.stop_reasons, best, bool(result.diverged[best]), int(result.epochs_run[best]),
        best_epoch, devices,
    )  # fmt: skip

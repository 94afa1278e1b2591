"""What a finished (or interrupted) training run reports: figures, files, exit status.

The test figures are computed on the run as saved, by :meth:`fungrad.runs.Run.evaluate` on
the raw test rows: the same computation as ``fungrad evaluate RUN``, so the two agree exactly.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from fungrad.cli import folder
from fungrad.cli.prepare import model_name, parameter_count
from fungrad.cli.summary import print_summary, write_json

DIVERGED_STATUS = 3


class Outcome(NamedTuple):
    """How training ended, for the run that predicts (the best one of restarts)."""

    reasons: list[str]  # one per run
    best_run: int
    diverged: bool  # the run that predicts diverged
    epochs_run: int
    best_epoch: int | None
    devices: int


def _evaluate(run_folder: Path, prepared) -> dict[str, dict[str, float]]:
    """The saved run's figures on the raw train and test parts (as ``fungrad evaluate``)."""
    import numpy as np

    from fungrad import runs

    run = runs.load_run(run_folder)
    classes = prepared.preprocessing["classes"]
    raw = prepared.raw

    def labels(y):
        return y if classes is None else np.asarray(classes, dtype=object)[y]

    evaluation = {"train": run.evaluate(raw.x_train, labels(raw.y_train))}
    if len(raw.x_test):
        evaluation["test"] = run.evaluate(raw.x_test, labels(raw.y_test))
    return evaluation


def finish(args, config, prepared, writer, outcome, progress, interruption) -> int:
    """Write the last views and the plot, report, and return the exit status.

    Interrupted: one line saying where the run is saved and how to resume (130 / 143).
    Otherwise the saved run is evaluated, the summary written and printed; then 3 if the run
    that predicts diverged, 0 if not.
    """
    title = f"{Path(str(config['data'])).name}: {model_name(config)}, {config['loss']}"
    written = writer.finish(outcome.reasons, args.plot, title)
    where = folder.relative(writer.folder)
    if interruption.signal is not None and any(
        r.startswith("interrupted") for r in outcome.reasons
    ):
        print(
            f"fungrad: {outcome.reasons[outcome.best_run]}; the run is saved in {where}; "
            f"resume with: fungrad train --resume {where}",
            file=sys.stderr,
        )
        return interruption.exit_status
    evaluation = _evaluate(writer.folder, prepared)
    summary = _summary(config, writer, outcome, evaluation, progress, written)
    write_json(writer.folder / "summary.json", summary)
    summary["files"] = [str(path) for path in (*written, writer.folder / "summary.json")]
    if args.json:
        print(json.dumps(summary, indent=2, default=float))
    elif not args.quiet:
        print_summary(summary)
    if interruption.signal is not None:
        print(
            f"fungrad: interrupted by {interruption.name}; the finished run is saved in {where}",
            file=sys.stderr,
        )
        return interruption.exit_status
    if outcome.diverged:
        print(
            f"fungrad: the run diverged ({outcome.reasons[outcome.best_run]}); its last finite "
            f"state is saved in {where}",
            file=sys.stderr,
        )
        return DIVERGED_STATUS
    return 0


def _best_figures(writer, outcome) -> dict[str, Any]:
    if outcome.best_epoch is None:
        return {}
    history = writer.runs_history()[outcome.best_run]["history"]
    figures = {"best_epoch": outcome.best_epoch, "best_metric": writer.saved_config["keep_best"]}
    for name in ("val_loss", "val_accuracy"):
        if name in history and outcome.best_epoch > 0:
            figures["best_" + name] = history[name][outcome.best_epoch - 1]
    return figures


def _runs_table(writer, outcome) -> list[dict[str, Any]]:
    from fungrad.cli.writer import ranking

    runs = writer.runs_history(outcome.reasons)
    metric, mode = ranking(writer.saved_config, runs[0]["history"])
    pick = min if mode == "min" else max
    rows = []
    for index, run in enumerate(runs):
        finite = [v for v in run["history"].get(metric, []) if v == v and abs(v) != float("inf")]
        rows.append({
            "run": index, "learning_rate": run["learning_rate"], "seed": run["seed"],
            "best_value": pick(finite) if finite else None,
            "epochs": len(run["history"]["loss"]), "stop_reason": run["stop_reason"],
            "diverged": run["diverged"],
        })  # fmt: skip
    return rows


def _summary(config, writer, outcome, evaluation, progress, written) -> dict[str, Any]:
    """The summary printed by ``--json`` (and, for people, by ``print_summary``)."""
    import jax

    compile_s, train_s = progress.timings()
    summary = {
        "data": config["data"], "model": model_name(config), "sizes": config["sizes"],
        "loss": config["loss"], "parameters": parameter_count(config),
        "optimizer": config["optimizer"],
        "learning_rate": writer.labels[outcome.best_run]["learning_rate"],
        "epochs_run": outcome.epochs_run, "stop_reason": outcome.reasons[outcome.best_run],
        **_best_figures(writer, outcome),
        **{f"{part}_{name}": value for part, figures in evaluation.items()
           for name, value in figures.items()},
        "compile_time_s": round(compile_s, 3), "train_time_s": round(train_s, 3),
        "wall_time_s": round(time.perf_counter() - progress.started, 3),
        "backend": jax.default_backend(), "devices": outcome.devices,
        "runs": writer.runs, "best_run": outcome.best_run, "diverged": outcome.diverged,
        "run_folder": str(writer.folder), "checkpoint": str(writer.folder / "checkpoint.npz"),
    }  # fmt: skip
    if writer.runs > 1:
        summary["runs_table"] = _runs_table(writer, outcome)
        summary["best_metric"] = summary.get("best_metric") or writer.saved_config.get("keep_best")
    return summary

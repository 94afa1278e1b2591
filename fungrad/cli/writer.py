"""Writing a run folder: the checkpoint first, then the views of it, at every save.

``checkpoint.npz`` is the record: state, history, best epoch and every setting, written
atomically. ``config.json`` and ``history.json`` are views of the same snapshot, written
right after it (each atomically), so they always describe the checkpoint's epoch; a resume
rewrites them from the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fungrad.cli.plot import plot
from fungrad.cli.summary import write_json


def run_labels(config) -> list[dict[str, Any]]:
    """One description per run: its learning rate, restart (seed) and a label."""
    grid = config["learning_rates"] or [config["learning_rate"]]
    if config["restarts"] == 1 and not config["learning_rates"]:
        return [{"learning_rate": grid[0], "seed": config["seed"], "label": f"lr={grid[0]:g}"}]
    return [
        {"learning_rate": lr, "seed": config["seed"], "restart": r,
         "label": f"lr={lr:g}, restart {r}"}
        for r in range(config["restarts"]) for lr in grid
    ]  # fmt: skip


def ranking(config, history) -> tuple[str, str]:
    """The metric restarts are ranked by, and its direction."""
    from fungrad import stopping

    metric = config["keep_best"] or ("val_loss" if "val_loss" in history else "loss")
    return metric, stopping.direction(metric)


class RunWriter:
    """The ``checkpoint=`` callable of a command-line run: writes the folder at each save."""

    def __init__(self, folder: Path, config: dict, runs: int):
        self.folder, self.config, self.runs = folder, config, runs
        self.labels = run_labels(config)
        self.last = None  # the last snapshot written, and its config
        self.saved_config: dict | None = None
        self.best_run = 0
        self.warm_up = None  # the thread compiling the evaluation (joined after training)

    def __call__(self, snapshot) -> None:
        from fungrad import checkpoint
        from fungrad.train.restarts import rank_runs

        if self.runs > 1:
            metric, mode = ranking(self.config, snapshot.history)
            best_epochs = None if snapshot.best is None else snapshot.best.epoch
            epochs = snapshot.progress["epoch"]
            self.best_run = rank_runs(snapshot.history, epochs, best_epochs, metric, mode)
        config = {
            **self.config, **snapshot.config, "runs": self.runs, "best_run": self.best_run
        }  # fmt: skip
        checkpoint.save(
            self.folder / "checkpoint.npz", snapshot.state, config=config,
            history=snapshot.history, best=snapshot.best, progress=snapshot.progress,
        )  # fmt: skip
        self.saved_config, self.last = config, snapshot
        write_json(self.folder / "config.json", config)
        write_json(self.folder / "history.json", self.history_view())

    def runs_history(self, reasons: list[str] | None = None) -> list[dict[str, Any]]:
        """Each run's description and history (trimmed to its epochs), from the last save."""
        snapshot = self.last
        epochs = np.atleast_1d(snapshot.progress["epoch"])
        runs = []
        for r, label in enumerate(self.labels):
            history = {
                name: (values if self.runs == 1 else values[r, : epochs[r]]).tolist()
                for name, values in snapshot.history.items()
            }
            run = {**label, "history": history}
            if reasons is not None:
                run["stop_reason"] = reasons[r]
                run["diverged"] = reasons[r].startswith("diverged")
            runs.append(run)
        return runs

    def history_view(self, reasons: list[str] | None = None) -> dict[str, Any]:
        return {"runs": self.runs_history(reasons), "best_run": self.best_run}

    def finish(self, reasons: list[str], draw: bool, title: str) -> list[Path]:
        """Rewrite the history with the stop reasons, and draw the plot; the files written."""
        written = [self.folder / "checkpoint.npz", self.folder / "config.json"]
        view = self.history_view(reasons)
        write_json(self.folder / "history.json", view)
        written.append(self.folder / "history.json")
        if draw:
            plot(self.folder / "plot.png", view["runs"], self.best_run, title=title)
            written.append(self.folder / "plot.png")
        return written

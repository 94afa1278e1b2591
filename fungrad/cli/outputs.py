"""What ``fungrad train`` writes and prints: the JSON files, the plot and the summary."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["plot", "print_summary", "write_json"]


def write_json(path: Path, value) -> None:
    """Write ``value`` as indented JSON, atomically (a temporary file, then a rename)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2, default=float) + "\n")
    temporary.replace(path)


def plot(path: Path, runs, best: int) -> None:
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


def print_summary(summary) -> None:
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

"""What ``fungrad train`` writes and prints: the JSON files, the training plot, the summary.

Every function here takes plain data (lists, dicts, numbers, strings), so any command can
call it with what it has:

- a *run* for the plot is ``{"label": str, "history": {metric: [float, ...]}, "diverged":
  bool}``, the history holding any of ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``
  (one value per epoch);
- a *summary* for :func:`print_summary` is a flat dict; each key it knows prints one line,
  and a missing key prints nothing (see :func:`print_summary` for the keys).

Files are written atomically: to a temporary file in the same folder, then ``os.replace``.
The plot uses matplotlib's Agg canvas directly, so the user's pyplot backend is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "clip_level",
    "draw_history",
    "plot",
    "print_summary",
    "restarts_table",
    "write_json",
]

CLIP_FACTOR = 100.0
"""Loss values above this many times the best run's median loss are clipped (see clip_level)."""


# --------------------------------------------------------------------------- files


def _write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(temporary_path)``, then move the file over ``path`` in one step."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(str(temporary))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically; NumPy and JAX scalars become floats.

    Args:
        path: the file to write (its folder must exist).
        value: anything ``json.dumps`` takes, plus objects ``float()`` converts.
    """
    text = json.dumps(value, indent=2, default=float) + "\n"
    _write_atomically(path, lambda temporary: Path(temporary).write_text(text))


# --------------------------------------------------------------------------- the plot


def _check_runs(runs: Sequence[Mapping[str, Any]], best: int) -> None:
    if isinstance(runs, Mapping) or not isinstance(runs, Sequence) or not runs:
        raise ValueError(f"runs: expected a non-empty list of run dicts, got {runs!r:.80}")
    for index, run in enumerate(runs):
        if not isinstance(run, Mapping) or not isinstance(run.get("history"), Mapping):
            raise ValueError(
                f"runs[{index}]: expected a dict with a 'history' dict of metric lists, "
                f"got {run!r:.80}"
            )
    if isinstance(best, bool) or not isinstance(best, int) or not 0 <= best < len(runs):
        raise ValueError(f"best: expected a run index in [0, {len(runs)}), got {best!r}")


def _loss_values(run: Mapping[str, Any]):
    import numpy as np

    history = run["history"]
    parts = [np.asarray(history.get(name) or [], dtype=float) for name in ("loss", "val_loss")]
    return np.concatenate(parts)


def clip_level(runs: Sequence[Mapping[str, Any]], best: int) -> float | None:
    """The loss above which the plot clips a curve to the top of the axis.

    The level is ``CLIP_FACTOR`` (100) times the median of the absolute finite loss values
    (training and validation) of the best run, raised to that run's largest finite value when
    it did not diverge, so the best run is always drawn whole. A median is robust to the few
    huge values a run shows just before it diverges; no fixed ceiling is used because a
    regression loss on unscaled targets can honestly be large. When the best run has no
    finite loss, every run's finite values serve instead. Non-finite values are always
    clipped.

    Args:
        runs: the runs, each ``{"history": {"loss": [...], "val_loss": [...]}, ...}``.
        best: the index of the best run in ``runs``.

    Returns:
        The level, or ``None`` when no run has a finite loss value.

    Raises:
        ValueError: if ``runs`` is empty or malformed, or ``best`` is not an index into it.

    >>> good = {"history": {"loss": [2.0, 1.0, 0.5]}, "diverged": False}
    >>> bad = {"history": {"loss": [2.0, 1e12, float("inf")]}, "diverged": True}
    >>> clip_level([good, bad], 0)
    100.0
    """
    import numpy as np

    _check_runs(runs, best)
    values = _loss_values(runs[best])
    reference = values[np.isfinite(values)]
    own = reference.size > 0
    if not own:
        values = np.concatenate([_loss_values(run) for run in runs])
        reference = values[np.isfinite(values)]
    if reference.size == 0:
        return None
    level = CLIP_FACTOR * float(np.median(np.abs(reference)))
    if own and not runs[best].get("diverged", False):
        level = max(level, float(reference.max()))
    return level if level > 0 else 1.0


def _colours(count: int) -> list:
    import matplotlib

    if count <= 10:
        return [matplotlib.colormaps["tab10"](index) for index in range(count)]
    viridis = matplotlib.colormaps["viridis"]
    return [viridis(index / (count - 1)) for index in range(count)]


def _draw_losses(axis, history, level: float | None, style: dict) -> tuple[list, bool]:
    """Draw a run's loss curves, clipped at ``level``; returns the values shown, and if any
    was clipped."""
    import numpy as np

    shown_values, clipped = [], False
    for metric, line in (("loss", "-"), ("val_loss", "--")):
        values = np.asarray(history.get(metric) or [], dtype=float)
        if values.size == 0:
            continue
        epochs = np.arange(1, values.size + 1)
        out = ~np.isfinite(values)
        if level is not None:
            out |= values > level
        shown = np.where(out, np.nan if level is None else level, values)
        broken = ~np.isfinite(values)
        if broken.any():  # nothing after the first non-finite value means anything
            shown[int(np.argmax(broken)) + 1 :] = np.nan
        axis.plot(epochs, shown, line, **style)
        if out.any() and level is not None:
            clipped = True
            first = int(np.argmax(out))
            axis.plot(
                epochs[first], level, "x", color=style["color"], markersize=9, mew=2, zorder=5
            )
        shown_values.append(shown[np.isfinite(shown)])
    return shown_values, clipped


def _draw_accuracies(axis, history, style: dict) -> None:
    import numpy as np

    for metric, line in (("accuracy", "-"), ("val_accuracy", "--")):
        values = np.asarray(history.get(metric) or [], dtype=float)
        if values.size:
            values = np.where(np.isfinite(values), values, np.nan)
            axis.plot(np.arange(1, values.size + 1), values, line, **style)


def _run_label(run: Mapping[str, Any], index: int, is_best: bool, several: bool) -> str:
    label = str(run.get("label") or f"run {index}")
    if run.get("diverged", False):
        label += " (diverged)"
    if is_best and several:
        label += " (best)"
    return label


def draw_history(runs: Sequence[Mapping[str, Any]], best: int, *, title: str):
    """Draw the training curves of one or more runs on a new matplotlib figure.

    The loss panel shows each run in its own colour, training solid and validation dashed,
    the best run thicker; it is log-scaled when every value shown is positive. Values above
    :func:`clip_level` or not finite are drawn at that level, with an ``x`` at the first such
    epoch, so a diverged run cannot stretch the axis; a curve ends at its first non-finite
    value. An accuracy panel is added when any
    run has accuracies. Epoch ticks are integers; the legend sits right of the panels.

    Args:
        runs: a list of ``{"label": str, "history": {metric: [float, ...]}, "diverged":
            bool}``; ``label`` and ``diverged`` may be left out.
        best: the index of the best run in ``runs``.
        title: the figure's title, e.g. the data and the model.

    Returns:
        A ``matplotlib.figure.Figure`` on an Agg canvas; ``figure.axes[0]`` is the loss panel.

    Raises:
        ValueError: if ``runs`` is empty or malformed, or ``best`` is not an index into it.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    level = clip_level(runs, best)
    has_accuracy = any(
        run["history"].get(name) for run in runs for name in ("accuracy", "val_accuracy")
    )
    figure = Figure(figsize=(12 if has_accuracy else 8, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if has_accuracy else 1, squeeze=False)[0]
    colours, several = _colours(len(runs)), len(runs) > 1
    handles, shown, clipped = [], [], False
    for index, run in enumerate(runs):
        is_best = index == best and several
        style = {
            "color": colours[index],
            "linewidth": 2.8 if is_best else (1.3 if several else 2.0),
            "zorder": 4 if is_best else 2,
        }
        values, run_clipped = _draw_losses(axes[0], run["history"], level, style)
        shown += values
        clipped |= run_clipped
        if has_accuracy:
            _draw_accuracies(axes[1], run["history"], style)
        handles.append(Line2D([], [], label=_run_label(run, index, is_best, several), **style))
    handles += [
        Line2D([], [], color="0.35", linestyle="-", label="train"),
        Line2D([], [], color="0.35", linestyle="--", label="validation"),
    ]
    if clipped:
        handles.append(Line2D([], [], color="0.35", marker="x", linestyle="none", label="clipped"))
    finite = np.concatenate(shown) if shown else np.zeros(0)
    if finite.size and np.all(finite > 0):
        axes[0].set_yscale("log")
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=False):
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.legend(handles=handles, loc="outside right upper", fontsize=8)
    return figure


def plot(
    path: str | os.PathLike, runs: Sequence[Mapping[str, Any]], best: int, *, title: str
) -> tuple[float, float]:
    """Write the training curves of ``runs`` as a PNG, atomically (see :func:`draw_history`).

    Args:
        path: the PNG to write (its folder must exist).
        runs: a list of ``{"label": str, "history": {metric: [float, ...]}, "diverged":
            bool}``.
        best: the index of the best run in ``runs``.
        title: the figure's title, e.g. ``"digits: MLP 64-64-10, softmax_cross_entropy"``.

    Returns:
        The loss panel's y-limits ``(bottom, top)`` as drawn.

    Raises:
        ValueError: if ``runs`` is empty or malformed, or ``best`` is not an index into it.
        OSError: if the file cannot be written.
    """
    figure = draw_history(runs, best, title=title)
    _write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    bottom, top = figure.axes[0].get_ylim()
    return float(bottom), float(top)


# --------------------------------------------------------------------------- the summary


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _cell(row: Mapping[str, Any], key: str, best_run: Any) -> str:
    if key == "mark":
        return "*" if row.get("run") == best_run or row.get("best") is True else ""
    if key == "diverged":
        return "yes" if row.get("diverged") else ""
    value = row.get(key)
    if value is None:
        return ""
    return str(value) if key == "stop_reason" else _number(value)


def restarts_table(
    rows: Sequence[Mapping[str, Any]], *, best: Any = None, metric: str | None = None
) -> str:
    """A text table of restarts, one row per run, the best run marked with ``*``.

    Args:
        rows: dicts with any of ``run``, ``learning_rate``, ``seed``, ``best_value``,
            ``epochs``, ``stop_reason``, ``diverged`` (a column appears when a row has its
            key; ``diverged`` when a run diverged); a row with ``"best": True`` is marked too.
        best: the ``run`` value of the best run, if known.
        metric: the name of the figure in ``best_value`` (the column's heading).

    Returns:
        The table, lines joined by newlines, with a ``* best run`` note when one is marked.

    Raises:
        TypeError: if ``rows`` is not a list of dicts.

    >>> print(restarts_table([{"run": 0, "best_value": 0.5}, {"run": 1, "best_value": 0.25}],
    ...                      best=1, metric="val_loss"))
       run  val_loss
       0         0.5
    *  1        0.25
    * best run
    """
    if isinstance(rows, Mapping) or not all(isinstance(row, Mapping) for row in rows):
        raise TypeError(f"rows: expected a list of dicts, got {rows!r:.80}")
    headings = {
        "run": "run",
        "learning_rate": "learning rate",
        "seed": "seed",
        "best_value": metric or "best value",
        "epochs": "epochs",
        "diverged": "diverged",
        "stop_reason": "stop reason",
    }
    keys = ["mark"] + [
        key
        for key in headings
        if any(row.get(key) if key == "diverged" else key in row for row in rows)
    ]
    headings["mark"] = ""
    table = [[headings[key] for key in keys]]
    table += [[_cell(row, key, best) for key in keys] for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(keys))]
    left = {"mark", "run", "diverged", "stop_reason"}
    lines = [
        "  ".join(
            text.ljust(width) if key in left else text.rjust(width)
            for key, text, width in zip(keys, line, widths, strict=True)
        ).rstrip()
        for line in table
    ]
    if any(line[0] for line in table[1:]):
        lines.append("* best run")
    return "\n".join(lines)


def _figures(summary: Mapping[str, Any], prefix: str) -> str:
    shown = []
    for name in ("loss", "accuracy", "rmse", "mae"):
        value = summary.get(f"{prefix}_{name}")
        if value is not None:
            text = f"{float(value):.4f}" if name == "accuracy" else _number(value)
            shown.append(f"{name} {text}")
    return "  ".join(shown)


def _model_lines(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = []
    if "data" in summary:
        lines.append(("data", str(summary["data"])))
    model = []
    if "sizes" in summary:
        model.append("MLP " + "-".join(str(size) for size in summary["sizes"]))
    if "loss" in summary:
        model.append(f"loss {summary['loss']}")
    if model:
        lines.append(("model", ", ".join(model)))
    if "parameters" in summary:
        lines.append(("parameters", f"{int(summary['parameters']):,}"))
    optimizer = []
    if "optimizer" in summary:
        optimizer.append(str(summary["optimizer"]))
    if "learning_rate" in summary:
        optimizer.append(f"learning rate {_number(summary['learning_rate'])}")
    if optimizer:
        lines.append(("optimizer", ", ".join(optimizer)))
    return lines


def _training_lines(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = []
    if "epochs_run" in summary or "stop_reason" in summary:
        epochs = str(summary.get("epochs_run", ""))
        reason = summary.get("stop_reason")
        lines.append(("epochs run", f"{epochs}  ({reason})" if reason else epochs))
    if "best_epoch" in summary:
        text = str(summary["best_epoch"])
        if "best_metric" in summary and "best_value" in summary:
            text += f"  ({summary['best_metric']} {_number(summary['best_value'])})"
        lines.append(("best epoch", text))
    validation = _figures(
        {key[5:]: value for key, value in summary.items() if key.startswith("best_val_")},
        "val",
    )
    if validation:
        lines.append(("at best epoch", f"validation {validation}"))
    for prefix, label in (("train", "train"), ("val", "validation"), ("test", "test")):
        figures = _figures(summary, prefix)
        if figures:
            lines.append((label, figures))
    runs = summary.get("runs")
    if isinstance(runs, int) and runs > 1:
        lines.append(("runs", str(runs)))
    return lines


def _machine_lines(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    lines = [
        (label, f"{float(summary[key]):.2f} s")
        for key, label in (
            ("compile_time_s", "compile time"),
            ("train_time_s", "train time"),
            ("wall_time_s", "wall time"),
        )
        if key in summary
    ]
    if "backend" in summary or "devices" in summary:
        text = str(summary.get("backend", ""))
        devices = summary.get("devices")
        if devices is not None:
            noun = "device" if devices == 1 else "devices"
            text = f"{text} ({devices} {noun})".strip()
        lines.append(("backend", text))
    if "checkpoint" in summary:
        lines.append(("checkpoint", str(summary["checkpoint"])))
    files = [str(name) for name in summary.get("files") or []]
    lines += [("files" if index == 0 else "", name) for index, name in enumerate(files)]
    return lines


def print_summary(summary: Mapping[str, Any], file: TextIO | None = None) -> None:
    """Print a training summary for people: one aligned line per thing known.

    Keys understood (each optional; a missing key prints nothing):

    - the run: ``data``; ``sizes`` (layer widths) and ``loss``; ``parameters``;
      ``optimizer`` and ``learning_rate``;
    - training: ``epochs_run`` and ``stop_reason``; ``best_epoch`` with ``best_metric`` and
      ``best_value``; ``best_val_loss``, ``best_val_accuracy``; ``runs`` (shown above 1);
    - figures for ``train``, ``val`` and ``test``: ``{part}_loss``, ``{part}_accuracy``,
      ``{part}_rmse``, ``{part}_mae``;
    - the machine: ``compile_time_s``, ``train_time_s``, ``wall_time_s``; ``backend`` and
      ``devices``;
    - files: ``checkpoint``; ``files`` (a list of paths, one per line);
    - restarts: ``runs_table`` (rows for :func:`restarts_table`), marked by ``best_run``,
      headed by ``best_metric``.

    Args:
        summary: the summary dict.
        file: where to print; standard output by default.

    >>> print_summary({"data": "digits", "sizes": [64, 10], "loss": "l2", "epochs_run": 3})
    data        digits
    model       MLP 64-10, loss l2
    epochs run  3
    """
    file = sys.stdout if file is None else file
    lines = _model_lines(summary) + _training_lines(summary) + _machine_lines(summary)
    width = max((len(label) for label, _ in lines), default=0) + 2
    text = [f"{label:<{width}}{value}".rstrip() for label, value in lines]
    rows = summary.get("runs_table")
    if rows:
        table = restarts_table(
            rows, best=summary.get("best_run"), metric=summary.get("best_metric")
        )
        text += ["", *table.splitlines()]
    print("\n".join(text), file=file)

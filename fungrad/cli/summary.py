"""What ``fungrad train`` writes and prints for people and tools: the summary, the restarts
table, the JSON files.

Every function here takes plain data (lists, dicts, numbers, strings), so any command can
call it with what it has: a *summary* for :func:`print_summary` is a flat dict; each key it
knows prints one line, and a missing key prints nothing (see :func:`print_summary` for the
keys).

Files are written atomically: to a temporary file in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

__all__ = ["print_summary", "restarts_table", "write_json"]


# --------------------------------------------------------------------------- files


def write_atomically(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it, rename it over ``path``.

    The checkpoint's own atomic write (:func:`fungrad.checkpoint.write_atomically`): the same
    temporary names, which a later run clears if a kill leaves one behind.
    """
    from fungrad.checkpoint import atomic

    atomic.write_atomically(Path(path), write)


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically; NumPy and JAX scalars become floats.

    Args:
        path: the file to write (its folder must exist).
        value: anything ``json.dumps`` takes, plus objects ``float()`` converts.
    """
    text = json.dumps(value, indent=2, default=float) + "\n"
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


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
    if "model" in summary:
        model.append(str(summary["model"]))
    elif "sizes" in summary:
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

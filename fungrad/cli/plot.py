"""The training plot of ``fungrad train``: loss and accuracy curves of one or more runs.

Every function here takes plain data, so any command can call it with what it has: a *run*
is ``{"label": str, "history": {metric: [float, ...]}, "diverged": bool}``, the history
holding any of ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy`` (one value per epoch).

The PNG is written atomically (to a temporary file in the same folder, then ``os.replace``).
The plot uses matplotlib's Agg canvas directly, so the user's pyplot backend is left alone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from fungrad.cli.summary import write_atomically

__all__ = ["clip_level", "draw_history", "plot"]

CLIP_FACTOR = 100.0
"""Loss values above this many times the best run's median loss are clipped (see clip_level)."""


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


def _label_axes(axes, shown: list) -> None:
    """Label and grid the panels; log-scale the loss panel when every value shown is positive."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    finite = np.concatenate(shown) if shown else np.zeros(0)
    if finite.size and np.all(finite > 0):
        axes[0].set_yscale("log")
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=False):
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)


def _warm_up() -> None:
    """Import matplotlib and render a tiny figure, so that fonts and the renderer are ready."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D  # noqa: F401  (imported now for draw_history)
    from matplotlib.ticker import MaxNLocator  # noqa: F401

    figure = Figure(figsize=(1, 1))
    canvas = FigureCanvasAgg(figure)
    axis = figure.subplots()
    axis.plot([0, 1], [1, 0])
    axis.set_title("warm-up")
    canvas.draw()


def warm_up_in_background() -> threading.Thread:
    """Start :func:`_warm_up` in a daemon thread while the run compiles and trains.

    Importing matplotlib and loading its fonts take about a second; done while XLA compiles
    (which releases the GIL), the plot after training costs only its drawing.
    """
    thread = threading.Thread(target=_warm_up, name="fungrad-plot-warm-up", daemon=True)
    thread.start()
    return thread


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    level = clip_level(runs, best)
    has_accuracy = any(
        run["history"].get(name) for run in runs for name in ("accuracy", "val_accuracy")
    )
    width = 12 if has_accuracy else 8
    figure = Figure(figsize=(width, 4.5))
    # Fixed margins (a layout engine costs more than the drawing): 1.9 inches on the right
    # for the legend, room for the title above and the axis labels below and left.
    figure.subplots_adjust(left=0.75 / width, right=1 - 1.9 / width, bottom=0.12, top=0.88,
                           wspace=0.25)  # fmt: skip
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
    _label_axes(axes, shown)
    figure.suptitle(title)
    figure.legend(
        handles=handles, loc="upper left", bbox_to_anchor=(1 - 1.8 / width, 0.88), fontsize=8
    )
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
    # zlib's fastest level: a PNG about a fifth larger, written in half the time.
    write_atomically(
        path,
        lambda file: figure.savefig(file, dpi=100, format="png", pil_kwargs={"compress_level": 1}),
    )
    bottom, top = figure.axes[0].get_ylim()
    return float(bottom), float(top)

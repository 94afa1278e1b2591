"""What the command line writes and prints: the training plot, the summary, the restarts table."""

import io
import math
import re

import numpy as np
import pytest

from fungrad.cli.plot import clip_level, draw_history, plot
from fungrad.cli.summary import print_summary, restarts_table, write_json

PNG = b"\x89PNG\r\n\x1a\n"


def _run(label, loss, val_loss=None, accuracy=None, diverged=False):
    history = {"loss": list(loss)}
    if val_loss is not None:
        history["val_loss"] = list(val_loss)
    if accuracy is not None:
        history["accuracy"] = list(accuracy)
    return {"label": label, "history": history, "diverged": diverged}


GOOD = _run("lr=0.05", [2.3, 1.0, 0.5, 0.3, 0.2], [2.4, 1.1, 0.6, 0.4, 0.35])
SLOW = _run("lr=0.001", [2.3, 2.1, 1.9, 1.8, 1.7], [2.3, 2.2, 2.0, 1.9, 1.8])
DIVERGED = _run("lr=10", [2.3, 40.0, 1e12, math.inf, math.nan], diverged=True)


def _draw(figure):
    figure.canvas.draw()
    return figure.canvas.get_renderer()


def test_one_run_is_a_png_on_a_log_axis(tmp_path):
    path = tmp_path / "plot.png"
    bottom, top = plot(path, [GOOD], 0, title="digits: MLP 64-64-10, softmax_cross_entropy")
    assert path.read_bytes()[:8] == PNG
    assert 0 < bottom < 0.2 and 2.4 < top < 5
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]  # no temporary file left


def test_several_runs_one_colour_each_best_thicker_and_labelled(tmp_path):
    figure = draw_history([SLOW, GOOD], 1, title="digits: MLP 64-10, l2")
    axis = figure.axes[0]
    lines = [line for line in axis.get_lines() if line.get_linestyle() in ("-", "--")]
    colours = {tuple(line.get_color()) for line in lines}
    assert len(colours) == 2
    for colour in colours:
        styles = sorted(line.get_linestyle() for line in lines if tuple(line.get_color()) == colour)
        assert styles == ["-", "--"]  # train solid, validation dashed
    widths = {tuple(line.get_color()): line.get_linewidth() for line in lines}
    best_colour = tuple(lines[-1].get_color())
    assert widths[best_colour] > max(w for c, w in widths.items() if c != best_colour)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "lr=0.05 (best)" in labels and "lr=0.001" in labels
    assert figure.get_suptitle() == "digits: MLP 64-10, l2"
    plot(tmp_path / "plot.png", [SLOW, GOOD], 1, title="t")
    assert (tmp_path / "plot.png").read_bytes()[:8] == PNG


def test_the_legend_is_outside_the_axes():
    runs = [_run(f"lr={i}", [3.0 - i * 0.1, 2.0, 1.0], [3.0, 2.5, 2.0]) for i in range(6)]
    figure = draw_history(runs, 2, title="t")
    renderer = _draw(figure)
    legend = figure.legends[0].get_window_extent(renderer)
    for axis in figure.axes:
        assert not legend.overlaps(axis.get_window_extent(renderer))


def test_epoch_ticks_are_integers():
    figure = draw_history([_run("a", [1.0, 0.5, 0.4])], 0, title="t")
    _draw(figure)
    ticks = figure.axes[0].get_xticks()
    assert len(ticks) >= 2
    np.testing.assert_array_equal(ticks, np.round(ticks))


def test_a_diverged_run_is_clipped_and_marked(tmp_path):
    runs = [GOOD, DIVERGED]
    level = clip_level(runs, 0)
    assert level == pytest.approx(
        100 * np.median(GOOD["history"]["loss"] + GOOD["history"]["val_loss"])
    )
    bottom, top = plot(tmp_path / "plot.png", runs, 0, title="t")
    assert (tmp_path / "plot.png").read_bytes()[:8] == PNG
    assert level <= top < 3 * level  # not stretched to 1e12
    figure = draw_history(runs, 0, title="t")
    markers = [line for line in figure.axes[0].get_lines() if line.get_marker() == "x"]
    assert len(markers) == 1
    x, y = markers[0].get_data()
    assert list(x) == [3] and list(y) == [level]  # the first epoch off the axis
    curve = figure.axes[0].get_lines()[2].get_ydata()  # GOOD's two curves come first
    np.testing.assert_array_equal(curve, [2.3, 40.0, level, level, np.nan])
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "lr=10 (diverged)" in labels and "clipped" in labels


def test_clip_level_keeps_the_whole_best_run():
    steep = _run("steep", [1000.0, 1.0, 0.01, 0.001, 0.001])
    assert clip_level([steep, DIVERGED], 0) == 1000.0


def test_clip_level_without_finite_values_is_none():
    assert clip_level([_run("nan", [math.nan, math.inf], diverged=True)], 0) is None


def test_non_positive_losses_use_a_linear_axis():
    figure = draw_history([_run("a", [1.0, 0.0, -0.5])], 0, title="t")
    assert figure.axes[0].get_yscale() == "linear"
    assert draw_history([GOOD], 0, title="t").axes[0].get_yscale() == "log"


def test_accuracy_panel_only_when_there_are_accuracies():
    assert len(draw_history([GOOD], 0, title="t").axes) == 1
    with_accuracy = _run("a", [1.0, 0.5], accuracy=[0.5, 0.8])
    figure = draw_history([with_accuracy], 0, title="t")
    assert [axis.get_ylabel() for axis in figure.axes] == ["loss", "accuracy"]


@pytest.mark.parametrize(
    "runs, best, fragment",
    [([], 0, "runs"), ([{"label": "a"}], 0, "runs[0]"), ([GOOD], 1, "best")],
)
def test_bad_runs_name_the_argument(runs, best, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[")):
        clip_level(runs, best)


def test_write_json_is_atomic_and_takes_numpy_scalars(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float32(0.5)})
    assert (tmp_path / "a.json").read_text() == '{\n  "x": 0.5\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


FULL = {
    "data": "digits",
    "sizes": [64, 64, 10],
    "loss": "softmax_cross_entropy",
    "parameters": 4810,
    "optimizer": "momentum",
    "learning_rate": 0.05,
    "epochs_run": 12,
    "stop_reason": "max_epochs(12)",
    "best_epoch": 9,
    "best_metric": "val_loss",
    "best_value": 0.0812,
    "best_val_loss": 0.0812,
    "best_val_accuracy": 0.9722,
    "train_loss": 0.0123,
    "train_accuracy": 0.998,
    "test_loss": 0.0911,
    "test_accuracy": 0.9694,
    "compile_time_s": 1.234,
    "train_time_s": 4.5,
    "backend": "cpu",
    "devices": 1,
    "files": ["runs/a/checkpoint.npz", "runs/a/plot.png"],
}


def _printed(summary):
    out = io.StringIO()
    print_summary(summary, file=out)
    return out.getvalue()


def test_summary_prints_every_section_present():
    text = _printed(FULL)
    lines = text.splitlines()
    assert "digits" in lines[0]
    assert "MLP 64-64-10, loss softmax_cross_entropy" in text
    assert "4,810" in text
    assert "momentum, learning rate 0.05" in text
    assert "12  (max_epochs(12))" in text
    assert "9  (val_loss 0.0812)" in text
    assert "validation loss 0.0812  accuracy 0.9722" in text
    assert "loss 0.0123  accuracy 0.9980" in text and "loss 0.0911  accuracy 0.9694" in text
    assert re.search(r"compile time +1.23 s", text) and re.search(r"train time +4.50 s", text)
    assert "cpu (1 device)" in text
    file_lines = [line for line in lines if line.endswith(("checkpoint.npz", "plot.png"))]
    assert len(file_lines) == 2 and file_lines[0].startswith("files")
    column = len("at best epoch  ")  # the longest label, then two spaces
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in lines)


def test_summary_omits_what_is_missing():
    text = _printed({"data": "digits", "test_rmse": 0.25, "test_mae": 0.2})
    assert text.splitlines() == ["data  digits", "test  rmse 0.25  mae 0.2"]
    for absent in ("model", "optimizer", "epochs", "best", "time", "backend", "files", "train"):
        assert absent not in text


def test_summary_of_restarts_has_a_table_marking_the_best_run():
    rows = [
        {"run": 0, "learning_rate": 0.001, "best_value": 1.8, "epochs": 5, "diverged": False},
        {"run": 1, "learning_rate": 0.05, "best_value": 0.35, "epochs": 5, "diverged": False},
        {"run": 2, "learning_rate": 10.0, "best_value": None, "epochs": 3, "diverged": True},
    ]
    text = _printed(
        {"data": "digits", "runs_table": rows, "best_run": 1, "best_metric": "val_loss"}
    )
    table = text.split("\n\n")[1].splitlines()
    assert "val_loss" in table[0] and "learning rate" in table[0]
    marked = [line for line in table[1:] if line.startswith("*  ")]
    assert len(marked) == 1 and "0.05" in marked[0] and "0.35" in marked[0]
    assert "yes" in table[3] and table[-1] == "* best run"


def test_restarts_table_aligns_columns_and_takes_a_best_flag():
    rows = [
        {"run": 0, "seed": 1, "best_value": 0.123456, "stop_reason": "max_epochs(5)"},
        {"run": 1, "seed": 2, "best_value": 10.5, "stop_reason": "diverged", "best": True},
    ]
    lines = restarts_table(rows).splitlines()
    assert lines[1].startswith("   0") and lines[2].startswith("*  1")
    column = lines[0].index("stop reason")
    assert lines[1][column:] == "max_epochs(5)" and lines[2][column:] == "diverged"
    value_end = lines[0].index("best value") + len("best value")
    assert lines[1][:value_end].endswith("0.1235") and lines[2][:value_end].endswith("10.5")
    assert lines[-1] == "* best run"
    assert restarts_table([{"run": 0}]).splitlines() == ["  run", "  0"]
    with pytest.raises(TypeError, match="rows"):
        restarts_table({"run": 0})

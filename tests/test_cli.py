"""The ``fungrad`` command line, run in-process through ``fungrad.cli.main``."""

import gzip
import json
import re
import struct
import subprocess
import sys

import numpy as np
import pytest

from fungrad import checkpoint
from fungrad.cli import main


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    status = main(["train", "--out", str(out), "--epochs", "4", "--json", "--seed", "3"])
    return status, out


@pytest.mark.slow
def test_train_writes_checkpoint_history_config_and_plot(trained):
    status, out = trained
    assert status == 0
    for name in ("checkpoint.npz", "history.json", "config.json", "plot.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((out / "history.json").read_text())
    assert len(history["runs"][0]["history"]["loss"]) == 4
    config = json.loads((out / "config.json").read_text())
    assert config["sizes"] == [64, 64, 10] and config["loss"] == "softmax_cross_entropy"
    saved = checkpoint.restore(out / "checkpoint.npz")
    assert [p["w"].shape for p in saved.state.params] == [(64, 64), (64, 10)]
    assert int(saved.state.step) == 4 * int(np.ceil(1797 * 0.7 / 32))


@pytest.mark.slow
def test_default_training_reaches_95_percent_on_digits(tmp_path, capsys):
    status, out, err = run(capsys, "train", "--out", str(tmp_path), "--json", "--epochs", "12")
    assert status == 0
    summary = json.loads(out)
    assert summary["test_accuracy"] >= 0.95
    assert summary["backend"] in ("cpu", "gpu", "tpu")
    assert summary["epochs_run"] == 12
    assert "epochs" in summary["stop_reason"]


@pytest.mark.slow
def test_human_summary_and_progress_bar(tmp_path, capsys):
    status, out, err = run(capsys, "train", "--out", str(tmp_path), "--epochs", "2", "--no-plot")
    assert status == 0
    assert "test" in out and "accuracy" in out and "wall time" in out and "backend" in out
    assert "epochs" in err  # the progress bar draws on standard error
    assert not (tmp_path / "plot.png").exists()


@pytest.mark.slow
def test_quiet_prints_nothing(tmp_path, capsys):
    status, out, err = run(capsys, "train", "--out", str(tmp_path), "--epochs", "1", "--quiet")
    assert status == 0 and out == "" and err == ""


@pytest.mark.slow
def test_resume_continues_the_run_in_its_folder(tmp_path, capsys):
    first = tmp_path / "run"
    assert main(["train", "--out", str(first), "--epochs", "2", "--quiet", "--no-plot"]) == 0
    original = checkpoint.restore(first / "checkpoint.npz")
    status, out, _ = run(capsys, "train", "--resume", str(first), "--epochs", "3", "--json")
    assert status == 0
    assert json.loads(out)["epochs_run"] == 3
    history = json.loads((first / "history.json").read_text())["runs"][0]["history"]
    assert len(history["loss"]) == 3  # appended to the saved history
    assert history["loss"][:2] == original.history["loss"].tolist()
    resumed = checkpoint.restore(first / "checkpoint.npz")
    assert int(resumed.state.step) == int(original.state.step) * 3 // 2
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["--seed", "1", "--quiet", "--no-plot"]
    assert main(["train", "--out", str(straight), "--epochs", "3", *common]) == 0
    assert main(["train", "--out", str(split), "--epochs", "1", *common]) == 0
    assert main(["train", "--resume", str(split / "checkpoint.npz"), "--epochs", "3", *common]) == 0
    a = checkpoint.restore(straight / "checkpoint.npz")
    b = checkpoint.restore(split / "checkpoint.npz")
    for layer_a, layer_b in zip(a.state.params, b.state.params, strict=True):
        np.testing.assert_array_equal(layer_a["w"], layer_b["w"])
    for layer_a, layer_b in zip(a.best.params, b.best.params, strict=True):
        np.testing.assert_array_equal(layer_a["w"], layer_b["w"])


@pytest.mark.slow
def test_restarts_over_seeds_and_learning_rates(tmp_path, capsys):
    status, out, _ = run(
        capsys,
        "train",
        "--out",
        str(tmp_path),
        "--epochs",
        "3",
        "--restarts",
        "2",
        "--learning-rates",
        "0.001,0.05",
        "--json",
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["runs"] == 4
    history = json.loads((tmp_path / "history.json").read_text())
    runs = history["runs"]
    assert [r["learning_rate"] for r in runs] == [0.001, 0.05, 0.001, 0.05]
    best = [min(r["history"]["val_loss"]) for r in runs]  # --keep-best val_loss by default
    assert history["best_run"] == int(np.argmin(best))
    assert summary["learning_rate"] == runs[history["best_run"]]["learning_rate"]


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["gd", "sgd", "nesterov", "ema", "adam"])
def test_every_optimizer_runs(tmp_path, capsys, optimizer):
    status, out, _ = run(
        capsys,
        "train",
        "--out",
        str(tmp_path),
        "--epochs",
        "1",
        "--optimizer",
        optimizer,
        "--json",
        "--no-plot",
        "--hidden",
        "16",
    )
    assert status == 0
    assert json.loads(out)["optimizer"] == optimizer


@pytest.mark.slow
def test_stop_condition_from_the_command_line(tmp_path, capsys):
    status, out, _ = run(
        capsys,
        "train",
        "--out",
        str(tmp_path),
        "--epochs",
        "20",
        "--json",
        "--no-plot",
        "--stop",
        "target:accuracy:0.5:max",
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["epochs_run"] < 20
    assert summary["stop_reason"].startswith("target(accuracy >= 0.5)")


@pytest.mark.slow
def test_regression_from_csv_with_a_named_label_column(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    target = x @ np.array([1.0, -2.0, 0.5]) + 0.3
    rows = ["a,b,target,c"] + [f"{r[0]},{r[1]},{t},{r[2]}" for r, t in zip(x, target, strict=True)]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(rows) + "\n")
    status, out, _ = run(
        capsys,
        "train",
        "--data",
        str(path),
        "--label-column",
        "target",
        "--out",
        str(tmp_path / "out"),
        "--epochs",
        "30",
        "--json",
        "--no-plot",
        "--hidden",
        "none",
        "--optimizer",
        "gd",
        "--learning-rate",
        "0.1",
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["loss"] == "l2" and summary["sizes"] == [3, 1]
    assert summary["test_loss"] < 0.05
    assert "test_accuracy" not in summary


@pytest.mark.slow
def test_idx_gzip_images_and_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3, dtype=np.uint8), 30)
    images = (rng.integers(0, 40, size=(90, 4, 4)) + labels[:, None, None] * 60).astype(np.uint8)
    with gzip.open(tmp_path / "images.idx.gz", "wb") as f:
        f.write(struct.pack(">HBB3I", 0, 0x08, 3, 90, 4, 4) + images.tobytes())
    (tmp_path / "labels.idx").write_bytes(struct.pack(">HBBI", 0, 0x08, 1, 90) + labels.tobytes())
    status, out, _ = run(
        capsys,
        "train",
        "--data",
        str(tmp_path / "images.idx.gz"),
        "--labels",
        str(tmp_path / "labels.idx"),
        "--out",
        str(tmp_path / "out"),
        "--epochs",
        "10",
        "--json",
        "--no-plot",
    )
    assert status == 0
    summary = json.loads(out)
    assert summary["sizes"] == [16, 64, 3]
    assert summary["test_accuracy"] >= 0.9


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--data", "missing.csv"], "missing.csv"),
        (["train", "--data", "notes.txt"], "notes.txt"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--learning-rate", "-1"], "--learning-rate"),
        (["train", "--beta", "1.5"], "--beta"),
        (["train", "--activation", "swish"], "--activation"),
        (["train", "--optimizer", "lbfgs"], "--optimizer"),
        (["train", "--stop", "sometimes"], "--stop"),
        (["train", "--stop", "target:val_loss:abc"], "--stop"),
        (["train", "--hidden", "64,x"], "--hidden"),
        (["train", "--devices", "999"], "--devices"),
        (["train", "--resume", "nowhere/checkpoint.npz"], "nowhere"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello\n")
    status, out, err = run(
        capsys, *argv, *(["--out", str(tmp_path / "o")] if argv[0] == "train" else [])
    )
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_wrong_label_column_is_one_line(tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    status, _, err = run(
        capsys,
        "train",
        "--data",
        str(path),
        "--label-column",
        "label",
        "--out",
        str(tmp_path / "o"),
    )
    assert status == 2 and len(err.strip().splitlines()) == 1 and "label" in err


@pytest.mark.slow
def test_damaged_checkpoint_is_one_line(tmp_path, capsys, trained):
    _, out = trained
    damaged = tmp_path / "checkpoint.npz"
    damaged.write_bytes((out / "checkpoint.npz").read_bytes()[:500])
    status, _, err = run(capsys, "train", "--resume", str(tmp_path))
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_check_agrees_with_jax_grad(capsys):
    status, out, _ = run(capsys, "check", "--trials", "1", "--dtype", "float32")
    assert status == 0
    # Every built-in activation x loss (and any activation registered earlier in the session).
    rows = int(re.search(r"all (\d+) rows agree with jax.grad, in both engines", out).group(1))
    assert rows >= 32
    assert out.count("\n") == rows + 3
    header, *table = out.splitlines()[1:-1]
    assert "backprop" in header and "graph" in header
    for row in table:  # activation, loss, then one error per engine
        assert len(row.split()) == 4 and all(float(e) <= 2e-3 for e in row.split()[2:])


def test_check_refuses_an_unknown_activation(capsys):
    status, out, err = run(capsys, "check", "--activations", "tanh,nope")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "--activations: 'nope' is not a registered activation" in err


def test_check_flags_rows_beyond_the_tolerance_and_fails(capsys):
    from fungrad.cli import check

    errors = np.array([[1e-9, 0.0], [1e-9, 3e-8], [2e-8, 0.0]])
    failed = check._print_rows("tanh", ["l2", "mse", "softmax_cross_entropy"], errors, 1e-8)
    assert check._print_summary(failed, 3, 1e-8) == 1
    rows = capsys.readouterr().out.splitlines()
    # Each row names the engine beyond the tolerance; the first row is within it.
    assert [row.split("  ")[-1] for row in rows[:3]] == [
        rows[0].split("  ")[-1],
        "FAIL (graph)",
        "FAIL (backprop)",
    ]
    assert "FAIL" not in rows[0]
    assert rows[3] == "2 of 3 rows disagree with jax.grad beyond 1e-08"
    assert check._print_summary(0, 3, 1e-8) == 0


@pytest.mark.slow
def test_check_finds_a_wrong_rule_in_the_general_engine(capsys):
    from jax import lax

    from fungrad import graph
    from fungrad.graph import registry

    tanh_rule = registry.rule_for(lax.tanh_p)
    graph.defvjp(lax.tanh_p, lambda g, ans, x, **params: (1.01 * tanh_rule(g, ans, x)[0],))
    try:
        status, out, _ = run(
            capsys, "check", "--trials", "1", "--dtype", "float32", "--activations", "tanh,relu"
        )
    finally:
        graph.defvjp(lax.tanh_p, tanh_rule)
    assert status == 1
    failing = [line.split()[:2] for line in out.splitlines() if "FAIL" in line]
    # Only the graph column of the tanh rows: the MLP engine and jax.grad use no graph rule.
    assert failing and all(activation == "tanh" for activation, _ in failing)
    checked = {line.split()[0] for line in out.splitlines()[2:-1]}
    assert checked == {"tanh", "relu"}  # --activations: these two, and no other
    assert all(line.endswith("FAIL (graph)") for line in out.splitlines() if "FAIL" in line)


@pytest.mark.slow
def test_help_is_complete():
    result = subprocess.run(
        [sys.executable, "-m", "fungrad", "train", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for option in (
        "--data",
        "--labels",
        "--label-column",
        "--hidden",
        "--activation",
        "--output-activation",
        "--loss",
        "--optimizer",
        "--learning-rate",
        "--beta",
        "--batch-size",
        "--epochs",
        "--stop",
        "--restarts",
        "--learning-rates",
        "--gradients",
        "--seed",
        "--out",
        "--resume",
        "--overwrite",
        "--save-every",
        "--keep-best",
        "--no-keep-best",
        "--quiet",
        "--json",
        "--devices",
    ):
        assert option in result.stdout, option

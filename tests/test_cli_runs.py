"""``fungrad train``'s run folders, in-process: where runs go, what is refused, resuming,
keeping the best epoch, divergence, and the results ``evaluate`` and ``predict`` read back."""

import contextlib
import csv
import io
import json
import re
import shutil

import jax
import numpy as np
import pytest

import fungrad
from fungrad import checkpoint, mlp, optim
from fungrad.cli import main

COMMON = ["--hidden", "16", "--epochs", "2", "--quiet", "--no-plot"]
SPECIES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]


def call(*argv):
    """``(status, stdout, stderr)`` of ``fungrad ARGV``, run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(arg) for arg in argv])
    return status, out.getvalue(), err.getvalue()


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def nothing_trained(folder) -> None:
    assert [p for p in folder.rglob("checkpoint.npz") if p.is_file()] == []
    assert not (folder / "runs").exists()


def leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Two runs started without ``--out`` in a fresh folder: ``(folder, summaries)``."""
    folder = tmp_path_factory.mktemp("home")
    summaries = []
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for _ in range(2):
            status, out, err = call("train", *COMMON, "--json")
            assert status == 0, err
            summaries.append(json.loads(out))
    return folder, summaries


@pytest.fixture
def first_run(home):
    return home[0] / "runs" / "run-001"


# --------------------------------------------------------------------------- where runs go


@pytest.mark.slow
def test_runs_without_out_get_new_numbered_folders(home):
    folder, summaries = home
    assert sorted(p.name for p in (folder / "runs").iterdir()) == ["run-001", "run-002"]
    for number, summary in enumerate(summaries, start=1):
        where = (folder / summary["run_folder"]).resolve()
        assert where == (folder / "runs" / f"run-{number:03d}").resolve()
        assert (where / "checkpoint.npz").is_file() and (where / "summary.json").is_file()


@pytest.mark.slow
def test_summary_names_sizes_timings_and_files(home):
    folder, (summary, _) = home
    assert summary["parameters"] == (64 * 16 + 16) + (16 * 10 + 10)
    assert summary["compile_time_s"] >= 0 and summary["train_time_s"] >= 0
    files = [(folder / name).resolve() for name in summary["files"]]
    assert all(path.is_file() for path in files)
    assert {path.name for path in files} == {
        "checkpoint.npz", "config.json", "history.json", "summary.json"
    }  # fmt: skip
    saved = json.loads((folder / summary["run_folder"] / "summary.json").read_text())
    assert saved["test_loss"] == summary["test_loss"]


@pytest.mark.slow
def test_out_holding_a_run_is_refused(first_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(first_run, tmp_path / "taken")
    before = (tmp_path / "taken" / "checkpoint.npz").read_bytes()
    status, _, err = call("train", *COMMON, "--out", "taken")
    assert status == 2
    line = one_line(err)
    assert "taken" in line and "--overwrite" in line
    assert (tmp_path / "taken" / "checkpoint.npz").read_bytes() == before
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_overwrite_replaces_the_old_run(first_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(first_run, tmp_path / "taken")
    (tmp_path / "taken" / "plot.png").write_bytes(b"an old plot")
    status, _, err = call("train", *COMMON, "--out", "taken", "--overwrite", "--hidden", "8")
    assert status == 0, err
    assert json.loads((tmp_path / "taken" / "config.json").read_text())["hidden"] == [8]
    saved = checkpoint.restore(tmp_path / "taken" / "checkpoint.npz")
    assert [layer["w"].shape for layer in saved.state.params] == [(64, 8), (8, 10)]
    assert not (tmp_path / "taken" / "plot.png").exists()  # --no-plot: the old one is gone


def test_out_that_is_a_file_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a folder")
    status, _, err = call("train", *COMMON, "--out", "notes.txt")
    assert status == 2
    assert "notes.txt" in one_line(err)
    nothing_trained(tmp_path)


@pytest.mark.parametrize("extra", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_checkpoint_that_is_a_directory_is_refused_before_training(tmp_path, monkeypatch, extra):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "checkpoint.npz").mkdir(parents=True)
    status, _, err = call("train", *COMMON, "--out", "out", *extra)
    assert status == 2
    assert "checkpoint.npz" in one_line(err)
    nothing_trained(tmp_path)
    assert (tmp_path / "out" / "checkpoint.npz").is_dir()


def test_checkpoint_directory_is_named_as_a_directory_without_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "checkpoint.npz").mkdir(parents=True)
    status, _, err = call("train", *COMMON, "--out", "out")
    assert status == 2
    line = one_line(err)
    assert "directory" in line and "--overwrite" not in line


# --------------------------------------------------------------------------- resuming

CONFLICTS = [
    ("--learning-rate", "0.1", "0.05"),
    ("--optimizer", "adam", "momentum"),
    ("--data", "other.csv", "digits"),
    ("--restarts", "2", "1"),
    ("--hidden", "8", "16"),
]


@pytest.mark.parametrize(("option", "given", "saved"), CONFLICTS, ids=[c[0] for c in CONFLICTS])
@pytest.mark.slow
def test_resume_refuses_a_different_training_setting(first_run, option, given, saved):
    before = (first_run / "checkpoint.npz").read_bytes()
    status, _, err = call("train", "--resume", first_run, option, given, "--epochs", "3")
    assert status == 2
    line = one_line(err)
    assert option in line
    after_path = line.split(str(first_run))[-1]  # the two values, without the folder's digits
    assert re.search(rf"\b{re.escape(saved)}\b.*\b{re.escape(given)}\b", after_path), line
    assert (first_run / "checkpoint.npz").read_bytes() == before


@pytest.mark.parametrize(
    ("argv", "option"),
    [(["--out", "elsewhere", "--epochs", "3"], "--out"), (["--epochs", "2"], "--epochs"),
     (["--epochs", "1"], "--epochs")],
    ids=["out", "epochs-equal", "epochs-below"],
)  # fmt: skip
@pytest.mark.slow
def test_resume_refuses_out_and_too_few_epochs(first_run, tmp_path, monkeypatch, argv, option):
    monkeypatch.chdir(tmp_path)
    status, _, err = call("train", "--resume", first_run, *argv, "--quiet", "--no-plot")
    assert status == 2
    assert option in one_line(err)
    nothing_trained(tmp_path)


@pytest.fixture(scope="module")
def resumed_with_leftovers(home):
    """A copy of run-001 holding the temporary files killed saves leave, resumed with every
    conflicting option given its saved value: ``(status, stderr, folder, planted)``."""
    folder = home[0] / "resumed"
    shutil.copytree(home[0] / "runs" / "run-001", folder)
    planted = {
        "checkpoint": ".checkpoint.npz.0123456789ab.tmp",  # as checkpoint.save names them
        "views": [".config.json.0123456789cd.tmp", ".history.json.0123456789ef.tmp"],
    }
    for name in [planted["checkpoint"], *planted["views"]]:
        (folder / name).write_bytes(b"PK\x03\x04 a torn write")
    same = [option_value for option, _, saved in CONFLICTS for option_value in (option, saved)]
    status, _, err = call("train", "--resume", folder, *same, "--epochs", "3",
                          "--quiet", "--no-plot")  # fmt: skip
    return status, err, folder, planted


@pytest.mark.slow
def test_resume_accepts_the_saved_values(resumed_with_leftovers):
    status, err, folder, _ = resumed_with_leftovers
    assert status == 0, err
    history = json.loads((folder / "history.json").read_text())["runs"][0]["history"]
    assert len(history["loss"]) == 3
    assert int(checkpoint.restore(folder / "checkpoint.npz").progress["epoch"]) == 3


@pytest.mark.slow
def test_resume_removes_a_leftover_checkpoint_temporary(resumed_with_leftovers):
    status, _, folder, planted = resumed_with_leftovers
    assert status == 0
    assert not (folder / planted["checkpoint"]).exists()


@pytest.mark.slow
def test_resume_removes_leftover_view_temporaries(resumed_with_leftovers):
    status, _, folder, planted = resumed_with_leftovers
    assert status == 0
    assert [name for name in planted["views"] if (folder / name).exists()] == []


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """A checkpoint written by ``fungrad.fit(..., checkpoint=PATH)``, and labelled rows."""
    folder = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    fungrad.fit(mlp.init(jax.random.key(0), [3, 4, 2]), x, y, loss="softmax_cross_entropy",
                optimizer=optim.sgd(0.1), epochs=2, key=jax.random.key(1),
                checkpoint=folder / "run" / "checkpoint.npz")  # fmt: skip
    np.savetxt(folder / "rows.csv", x[:6], delimiter=",")
    np.savetxt(folder / "labelled.csv", np.c_[x[:6], y[:6]], delimiter=",")
    return folder, x[:6], y[:6]


@pytest.mark.slow
def test_resume_refuses_a_python_api_checkpoint(api_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, _, _ = api_run
    for target in (folder / "run", folder / "run" / "checkpoint.npz"):
        status, _, err = call("train", "--resume", target, "--epochs", "5", "--quiet")
        assert status == 2
        assert "--resume" in one_line(err)
    nothing_trained(tmp_path)


@pytest.mark.slow
def test_predict_and_evaluate_read_a_python_api_checkpoint(api_run):
    folder, x, y = api_run
    run = fungrad.load_run(folder / "run")
    status, out, err = call("predict", folder / "run", "--data", folder / "rows.csv")
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(row["prediction"]) for row in rows] == np.asarray(run.predict(x)).tolist()
    status, out, err = call("evaluate", folder / "run", "--data", folder / "labelled.csv", "--json")
    assert status == 0, err
    figures = json.loads(out)
    assert {name: figures[name] for name in ("loss", "accuracy")} == run.evaluate(x, y)
    status, _, err = call("evaluate", folder / "run")  # no data recorded: say so
    assert status == 2
    assert "--data" in one_line(err)


# --------------------------------------------------------------------------- divergence, best


@pytest.mark.slow
def test_divergence_exits_3_with_the_last_finite_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--optimizer", "sgd", "--learning-rate", "1e6", "--out", "diverged"]
    status, _, err = call("train", *COMMON, *argv)
    assert status == 3
    assert "diverged" in err.strip().splitlines()[-1]
    saved = checkpoint.restore(tmp_path / "diverged" / "checkpoint.npz")
    assert not np.all(np.isfinite(saved.history["loss"]))  # it did diverge
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves(saved.state.params))


@pytest.mark.slow
def test_keep_best_is_on_with_a_validation_split(home, first_run):
    _, (summary, _) = home
    assert summary["best_metric"] == "val_loss" and 1 <= summary["best_epoch"] <= 2
    saved = checkpoint.restore(first_run / "checkpoint.npz")
    assert saved.best is not None and saved.best.epoch == summary["best_epoch"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv", [["--no-keep-best"], ["--validation", "0"]], ids=["no-keep-best", "no-validation"]
)
def test_no_best_without_keep_best(tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    status, out, err = call("train", *COMMON, *argv, "--json", "--out", "run")
    assert status == 0, err
    assert "best_epoch" not in json.loads(out)
    assert checkpoint.restore(tmp_path / "run" / "checkpoint.npz").best is None


def test_keep_best_on_validation_loss_needs_a_validation_split(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = call("train", *COMMON, "--keep-best", "val_loss", "--validation", "0")
    assert status == 2
    assert "--keep-best" in one_line(err)
    nothing_trained(tmp_path)


# --------------------------------------------------------------------------- results


@pytest.fixture(scope="module")
def species(tmp_path_factory):
    """A run trained on a CSV with named columns and text class labels: ``(run, summary, x)``."""
    folder = tmp_path_factory.mktemp("species")
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    centres = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.5, 2.0]])
    x = (centres[y] + rng.normal(scale=0.3, size=(150, 4))).round(2)
    lines = [",".join([*FEATURES, "species"])]
    lines += [
        ",".join([*map(str, row), SPECIES[label]]) for row, label in zip(x.tolist(), y, strict=True)
    ]
    (folder / "species.csv").write_text("\n".join(lines) + "\n")
    new = x[::7]
    (folder / "new.csv").write_text(
        "\n".join([",".join(FEATURES), *(",".join(map(str, row)) for row in new.tolist())]) + "\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        status, out, err = call("train", *COMMON, "--data", "species.csv", "--json", "--out", "run")
    assert status == 0, err
    return folder, json.loads(out), new


@pytest.mark.slow
def test_evaluate_repeats_the_training_summary_exactly(species, monkeypatch):
    folder, summary, _ = species
    monkeypatch.chdir(folder)  # where it was trained: the run names its data as given
    status, out, err = call("evaluate", "run", "--json")
    assert status == 0, err
    figures = json.loads(out)
    assert figures["part"] == "test"
    assert figures["loss"] == summary["test_loss"]
    assert figures["accuracy"] == summary["test_accuracy"]


@pytest.mark.slow
def test_evaluate_from_another_directory(species, tmp_path, monkeypatch):
    folder, summary, _ = species
    monkeypatch.chdir(tmp_path)
    status, out, err = call("evaluate", folder / "run", "--json")
    assert status == 0, err
    assert json.loads(out)["loss"] == summary["test_loss"]


@pytest.mark.slow
def test_resume_from_another_directory(species, tmp_path, monkeypatch):
    folder, _, _ = species
    shutil.copytree(folder / "run", tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    status, _, err = call("train", "--resume", "run", "--epochs", "3", "--quiet", "--no-plot")
    assert status == 0, err


@pytest.mark.slow
def test_predict_round_trip_with_text_labels(species):
    folder, _, new = species
    status, out, err = call("predict", folder / "run", "--data", folder / "new.csv")
    assert status == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    run = fungrad.load_run(folder / "run")
    expected = np.asarray(run.predict(new)).tolist()
    assert [row["prediction"] for row in rows] == expected
    assert set(expected) <= set(SPECIES)
    scores = np.asarray(run.predict_scores(new))
    written = np.array([[row[f"score_{name}"] for name in SPECIES] for row in rows], np.float64)
    assert np.array_equal(written.astype(scores.dtype), scores)


@pytest.mark.slow
def test_restarts_summary_has_a_row_per_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["--restarts", "2", "--learning-rates", "0.01,0.1", "--json"]
    status, out, err = call("train", *COMMON, *argv)
    assert status == 0, err
    summary = json.loads(out)
    assert summary["runs"] == 4 and len(summary["runs_table"]) == 4
    assert [row["run"] for row in summary["runs_table"]] == [0, 1, 2, 3]
    assert sorted(row["learning_rate"] for row in summary["runs_table"]) == [0.01, 0.01, 0.1, 0.1]
    assert 0 <= summary["best_run"] < 4
    assert all(row["epochs"] == 2 for row in summary["runs_table"])

"""``fungrad predict`` and ``fungrad evaluate`` on run folders written as ``fungrad train`` does."""

import argparse
import csv
import io
import json

import jax
import numpy as np
import pytest

import fungrad
from fungrad import checkpoint, cli, data, mlp, optim, runs
from fungrad.cli.evaluate import add_evaluate_parser, run_evaluate
from fungrad.cli.predict import add_predict_parser, run_predict

FEATURES = ["sepal length", "sepal width", "petal length", "petal width"]
SPECIES = ["setosa", "versicolor", "virginica"]


def parser():
    built = argparse.ArgumentParser(prog="fungrad")
    subparsers = built.add_subparsers(dest="command")
    add_predict_parser(subparsers)
    add_evaluate_parser(subparsers)
    return built


def dispatch(args):
    return run_predict(args) if args.command == "predict" else run_evaluate(args)


def command(*argv):
    return dispatch(parser().parse_args([str(arg) for arg in argv]))


def save_run(folder, parts, classes, *, data_source, features, label_column, split):
    """Train a tiny MLP on the standardised training part and save it as fungrad train does."""
    standardize = data.fit_standardizer(parts.x_train)
    sizes = [parts.x_train.shape[1], 12, len(classes)]
    result = fungrad.fit(mlp.init(jax.random.key(0), sizes), standardize(parts.x_train),
                         parts.y_train, loss="softmax_cross_entropy", epochs=4, batch_size=32,
                         optimizer=optim.momentum(0.05, 0.9), key=jax.random.key(1))  # fmt: skip
    fit = {"model": "mlp", "sizes": sizes, "activation": "relu", "output_activation": "identity",
           "loss": "softmax_cross_entropy", "gradients": "backprop", "keep_best": None}  # fmt: skip
    config = {
        "format": "fungrad-run", "data": str(data_source), "labels": None,
        "label_column": label_column, **split, "standardize": True, "dtype": "float32",
        "sizes": sizes, "runs": 1, "best_run": 0, "loss": "softmax_cross_entropy", "fit": fit,
        "preprocessing": {
            "features": features, "n_features": sizes[0],
            "standardize": {"mean": standardize.mean.tolist(), "std": standardize.std.tolist()},
            "task": "classification", "classes": classes, "target": None,
        },
    }  # fmt: skip
    checkpoint.save(folder / "checkpoint.npz", result.state, config=config, history=result.history)
    return result.params, standardize


@pytest.fixture(scope="module")
def species(tmp_path_factory):
    """A run trained on a CSV of named columns and text labels, and that CSV."""
    folder = tmp_path_factory.mktemp("species")
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    centres = np.array([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.5, 2.0]])
    x = (centres[y] + rng.normal(scale=0.3, size=(120, 4))).round(2)
    file = folder / "species.csv"
    rows = [[*row, SPECIES[label]] for row, label in zip(x.tolist(), y, strict=True)]
    file.write_text("\n".join(",".join(map(str, r)) for r in [[*FEATURES, "species"], *rows]))
    parts = data.Split(x.astype(np.float32), y, *([np.zeros((0, 4), np.float32)] * 4))
    split = {"seed": 0, "validation": 0.0, "test": 0.0}
    save_run(folder, parts, SPECIES, data_source=file, features=FEATURES,
             label_column="species", split=split)  # fmt: skip
    return folder, file, x.astype(np.float32), np.array(SPECIES)[y]


def read_csv(text):
    return list(csv.reader(io.StringIO(text)))


@pytest.mark.slow
def test_predict_writes_predictions_and_scores_to_stdout(species, capsys):
    folder, file, x, labels = species
    assert command("predict", folder, "--data", file) == 0
    rows = read_csv(capsys.readouterr().out)
    assert rows[0] == ["prediction", "score_setosa", "score_versicolor", "score_virginica"]
    run = runs.load_run(folder)
    assert [row[0] for row in rows[1:]] == run.predict(x).tolist()
    scores = np.array([row[1:] for row in rows[1:]], float)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(scores, run.predict_scores(x), rtol=1e-6)
    assert np.mean(np.array(rows[1:])[:, 0] == labels) > 0.9


@pytest.mark.slow
def test_predict_output_file_holds_the_same_csv(species, tmp_path, capsys):
    folder, file, _, _ = species
    command("predict", folder, "--data", file)
    shown = capsys.readouterr().out
    output = tmp_path / "out" / "predictions.csv"
    assert command("predict", folder, "--data", file, "--output", output) == 0
    assert capsys.readouterr().out == ""
    assert output.read_text() == shown


@pytest.mark.slow
def test_predict_on_rows_without_the_label_in_another_column_order(species, tmp_path, capsys):
    folder, _, x, _ = species
    order = [3, 1, 0, 2]
    file = tmp_path / "new.csv"
    lines = [",".join(FEATURES[i] for i in order)]
    lines += [",".join(str(value) for value in row[order]) for row in x[:5]]
    file.write_text("\n".join(lines) + "\n")
    command("predict", folder, "--data", file)
    rows = read_csv(capsys.readouterr().out)
    assert [row[0] for row in rows[1:]] == runs.load_run(folder).predict(x[:5]).tolist()


def run_main(monkeypatch, capsys, *argv):
    """``fungrad.cli.main`` with the predict and evaluate subcommands wired in."""
    monkeypatch.setattr("fungrad.cli.parser.build_parser", parser)
    monkeypatch.setattr(cli, "_run_command", dispatch)
    status = cli.main([str(arg) for arg in argv])
    return status, capsys.readouterr()


@pytest.mark.slow
def test_missing_run_or_columns_is_one_line_and_status_2(species, tmp_path, monkeypatch, capsys):
    folder, file, _, _ = species
    status, captured = run_main(monkeypatch, capsys, "predict", tmp_path / "none", "--data", file)
    assert status == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "none: no such run folder" in captured.err
    bad = tmp_path / "bad.csv"
    bad.write_text("sepal length,sepal width,petal length\n1,2,3\n")
    status, captured = run_main(monkeypatch, capsys, "predict", folder, "--data", bad)
    assert status == 2 and captured.err.count("\n") == 1
    assert "missing feature columns: petal width" in captured.err


@pytest.mark.slow
def test_evaluate_a_labelled_file(species, capsys):
    folder, file, x, labels = species
    assert command("evaluate", folder, "--data", file, "--json") == 0
    figures = json.loads(capsys.readouterr().out)
    expected = runs.load_run(folder).evaluate(x, labels)
    assert {name: figures[name] for name in expected} == expected
    assert figures["rows"] == 120 and figures["data"] == str(file)
    assert command("evaluate", folder, "--data", file) == 0
    shown = capsys.readouterr().out
    assert f"accuracy: {expected['accuracy']:.6g}" in shown and "(120 rows)" in shown


@pytest.mark.slow
def test_evaluate_needs_labels(species, tmp_path):
    folder, _, x, _ = species
    file = tmp_path / "unlabelled.csv"
    file.write_text(",".join(FEATURES) + "\n" + ",".join(map(str, x[0].tolist())) + "\n")
    with pytest.raises(cli.UsageError, match="unlabelled.csv holds no labels"):
        command("evaluate", folder, "--data", file)


@pytest.mark.slow
def test_evaluate_without_data_is_the_runs_test_part(tmp_path, capsys):
    digits = data.load("digits")
    split = {"seed": 3, "validation": 0.1, "test": 0.2}
    parts = data.split(digits.x, digits.y, **split)
    params, standardize = save_run(tmp_path, parts, list(range(10)), data_source="digits",
                                   features=None, label_column="-1", split=split)  # fmt: skip
    assert command("evaluate", tmp_path, "--json") == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["rows"] == 360 and figures["part"] == "test" and figures["data"] == "digits"
    run = runs.load_run(tmp_path)
    expected = run.evaluate(parts.x_test, parts.y_test)
    assert {name: figures[name] for name in expected} == expected
    direct = fungrad.evaluate(
        params, standardize(parts.x_test), parts.y_test, loss="softmax_cross_entropy"
    )
    assert expected == direct


@pytest.mark.slow
def test_evaluate_without_data_needs_a_command_line_run(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 2)).astype(np.float32)
    fungrad.fit(mlp.init(jax.random.key(0), [2, 2]), x, np.arange(8) % 2,
                loss="softmax_cross_entropy", optimizer=optim.sgd(0.1), epochs=1,
                key=jax.random.key(1), checkpoint=tmp_path / "fit.npz")  # fmt: skip
    with pytest.raises(cli.UsageError, match=r"records no training data \(.*\); pass --data FILE"):
        command("evaluate", tmp_path / "fit.npz")

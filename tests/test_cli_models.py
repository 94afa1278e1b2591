"""`fungrad train --model cnn` and `--gradients`: the general engine from the command line,
and a saved CNN run that predicts, evaluates and resumes."""

import json

import numpy as np
import pytest

import fungrad
from fungrad import cnn
from fungrad.cli import main


def train(capsys, out, *extra):
    status = main(["train", "--out", str(out), "--no-plot", "--json", *extra])
    captured = capsys.readouterr()
    return status, (json.loads(captured.out) if status == 0 else captured.err)


@pytest.mark.slow
def test_a_cnn_trains_predicts_evaluates_and_resumes(tmp_path, capsys):
    out = tmp_path / "cnn"
    status, summary = train(capsys, out, "--model", "cnn", "--epochs", "3")
    assert status == 0 and summary["model"] == "CNN 8x8, conv16-conv32-10"
    run = fungrad.load_run(out)
    assert (
        run.config["gradients"] == "graph" and run.config["fit"]["function"] == "fungrad.cnn.apply"
    )
    assert summary["parameters"] == cnn.parameter_count(run.params)
    assert summary["test_accuracy"] > 0.8
    x, y = run.test_rows()
    assert np.mean(run.predict(x) == y) == pytest.approx(summary["test_accuracy"])
    given = fungrad.load_run(out, model=cnn.apply)  # the model given, not imported by name
    assert (given.predict(x[:5]) == run.predict(x[:5])).all()
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == summary["test_accuracy"]
    assert main(["train", "--resume", str(out), "--epochs", "4", "--quiet", "--no-plot"]) == 0
    assert fungrad.load_run(out).history["loss"].shape == (4,)


@pytest.mark.slow
def test_cnn_restarts_pick_the_best_run(tmp_path, capsys):
    status, summary = train(capsys, tmp_path / "r", "--model", "cnn", "--epochs", "2",
                            "--restarts", "2")  # fmt: skip
    assert status == 0
    run = fungrad.load_run(tmp_path / "r")
    assert run.params["conv1"]["w"].shape == (3, 3, 1, 16)  # one run's params, not stacked
    assert run.config["best_run"] in (0, 1)


@pytest.mark.slow
@pytest.mark.parametrize("given, recorded", [("graph", "graph"), ("autodiff", "jax")])
def test_the_mlp_trains_with_the_other_engines(tmp_path, capsys, given, recorded):
    status, summary = train(capsys, tmp_path / given, "--gradients", given, "--epochs", "2")
    assert status == 0 and summary["test_accuracy"] > 0.8
    assert fungrad.load_run(tmp_path / given).config["gradients"] == recorded


@pytest.mark.parametrize(
    "options, message",
    [
        (["--model", "cnn", "--gradients", "backprop"], "--gradients: backprop is the MLP engine"),
        (["--model", "cnn", "--data", "TABLE"], "expected square images"),
    ],
)
def test_cnn_mistakes_are_one_line(tmp_path, capsys, options, message):
    table = tmp_path / "t.csv"
    table.write_text("a,b,c,y\n" + "".join(f"{i},{i},{i},{i % 2}\n" for i in range(30)))
    options = [str(table) if option == "TABLE" else option for option in options]
    status, err = train(capsys, tmp_path / "x", *options, "--epochs", "1")
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1

"""Regression from the command line: targets standardised on the training part by default,
figures and predictions in the targets' own units."""

import json

import numpy as np
import pytest

import fungrad
from fungrad.cli import main


@pytest.fixture(scope="module")
def prices(tmp_path_factory):
    """A price table: targets in the thousands, which unscaled l2 steps would blow up."""
    folder = tmp_path_factory.mktemp("prices")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3)) * [1.0, 50.0, 10.0] + [5.0, 300.0, 100.0]
    price = 1000 + 30 * x[:, 0] + 2 * x[:, 1] - 5 * x[:, 2] + rng.normal(size=240) * 20
    lines = ["rooms,area,age,price"] + [
        f"{a:.3f},{b:.3f},{c:.3f},{p:.2f}" for (a, b, c), p in zip(x, price, strict=True)
    ]
    path = folder / "prices.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, price


def train(capsys, path, out, *extra):
    argv = ["train", "--data", str(path), "--out", str(out), "--json", "--no-plot", *extra]
    status = main(argv)
    return status, json.loads(capsys.readouterr().out) if status == 0 else None


@pytest.mark.slow
def test_defaults_converge_and_report_original_units(prices, tmp_path, capsys):
    path, price = prices
    status, summary = train(capsys, path, tmp_path / "run", "--epochs", "40")
    assert status == 0
    assert summary["test_rmse"] < 0.5 * np.std(price)  # learnt, in dollars
    assert summary["test_mae"] <= summary["test_rmse"]
    run = fungrad.load_run(tmp_path / "run")
    scaling = run.config["preprocessing"]["target"]
    assert scaling["mean"][0] == pytest.approx(np.mean(price), rel=0.05)
    rows = np.loadtxt(path, delimiter=",", skiprows=1)[:5]
    predicted = run.predict(rows[:, :3])
    assert np.all(np.abs(predicted - rows[:, 3]) < 5 * summary["test_rmse"])
    assert main(["evaluate", str(tmp_path / "run"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["rmse"] == summary["test_rmse"] and evaluated["mae"] == summary["test_mae"]


def test_no_standardize_targets_is_recorded(prices, tmp_path, capsys):
    path, _ = prices
    status, _ = train(
        capsys, path, tmp_path / "raw", "--epochs", "1", "--no-standardize-targets",
        "--optimizer", "sgd", "--learning-rate", "1e-9",
    )  # fmt: skip
    assert status == 0
    run = fungrad.load_run(tmp_path / "raw")
    assert run.config["standardize_targets"] is False
    assert run.config["preprocessing"]["target"] is None

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


@pytest.mark.slow
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


@pytest.mark.slow
def test_defaults_converge_on_a_housing_table(tmp_path, capsys):
    """A Boston-housing-like table (an R row-number column, a 0/1 column, features on
    scales from 0.1 to 400): the default learning rate of a regression does not diverge."""
    rng = np.random.default_rng(5)
    n = 506
    scale = [8, 23, 6, 0.25, 0.1, 0.7, 28, 2, 8.7, 168, 2, 91, 7]
    centre = [3.6, 11, 11, 0.07, 0.55, 6.3, 68, 3.8, 9.5, 408, 18, 356, 12.6]
    x = rng.normal(size=(n, 13)) * scale + centre
    x[:, 3] = rng.random(n) < 0.07
    medv = np.clip(22 + 5 * (x[:, 5] - 6.3) - 0.5 * (x[:, 12] - 12.6) + rng.normal(size=n) * 3,
                   5, 50)  # fmt: skip
    lines = ['"rownames",' + ",".join(f'"c{j}"' for j in range(13)) + ',"medv"']
    lines += [
        f"{i + 1}," + ",".join(f"{v:.4g}" for v in x[i]) + f",{medv[i]:.1f}" for i in range(n)
    ]
    path = tmp_path / "housing.csv"
    path.write_text("\n".join(lines) + "\n")
    status, summary = train(capsys, path, tmp_path / "run")
    assert status == 0 and summary["epochs_run"] == 30  # no divergence
    assert summary["test_rmse"] < 0.7 * np.std(medv)
    assert fungrad.load_run(tmp_path / "run").config["learning_rate"] == 0.02

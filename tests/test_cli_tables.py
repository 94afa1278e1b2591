"""Tables from the command line: the loader's notes on screen, its decisions saved in the run,
and `fungrad predict` reading a new raw file with them."""

import json

import numpy as np
import pytest

import fungrad
from fungrad.cli import main


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    """A penguins-like table as pandas writes it: an unnamed index, text columns, NA cells."""
    folder = tmp_path_factory.mktemp("penguins")
    rng = np.random.default_rng(1)
    lines = [",bill_length_mm,island,sex,species"]
    for i in range(150):
        species = ["Adelie", "Gentoo", "Chinstrap"][i % 3]
        bill = {"Adelie": 38.8, "Gentoo": 47.5, "Chinstrap": 48.8}[species] + rng.normal()
        island = {"Adelie": "Torgersen", "Gentoo": "Biscoe", "Chinstrap": "Dream"}[species]
        sex = "NA" if i % 25 == 7 else ["male", "female"][i % 2]
        lines.append(f"{i},{bill:.1f},{island},{sex},{species}")
    path = folder / "penguins.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_a_table_with_text_columns_trains_and_predicts_new_rows(penguins, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(penguins), "--out", str(out), "--no-plot", "--json"]
    assert main([*argv, "--epochs", "2"]) == 2
    assert "6 missing values" in capsys.readouterr().err
    assert main([*argv, "--epochs", "30", "--missing", "drop"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    for note in ("dropped as an index", "dropped 6 of 150 rows", "one-hot encoded as 3 columns"):
        assert note in captured.err
    assert summary["test_accuracy"] >= 0.9
    run = fungrad.load_run(out)
    table = run.config["preprocessing"]["table"]
    assert table["dropped"] == [""] and table["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert run.config["missing"] == "drop"
    new = tmp_path / "new.csv"
    new.write_text("sex,island,bill_length_mm\nmale,Torgersen,38.5\nfemale,Biscoe,47.9\n")
    predictions = tmp_path / "predictions.csv"
    assert main(["predict", str(out), "--data", str(new), "--output", str(predictions)]) == 0
    assert [line.split(",")[0] for line in predictions.read_text().splitlines()[1:]] == [
        "Adelie",
        "Gentoo",
    ]
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == summary["test_accuracy"]


@pytest.mark.slow
def test_table_options_are_recorded_and_checked_on_resume(penguins, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", str(penguins), "--out", str(out), "--no-plot", "--quiet"]
    assert main([*argv, "--epochs", "1", "--missing", "drop", "--drop-columns", "sex"]) == 0
    run = fungrad.load_run(out)
    assert run.config["drop_columns"] == "sex" and run.features[:1] == ["bill_length_mm"]
    assert "sex" in run.config["preprocessing"]["table"]["dropped"]
    resumed = ["train", "--resume", str(out), "--epochs", "2", "--no-plot", "--quiet"]
    assert main([*resumed, "--missing", "error"]) == 2
    assert "--missing: the run in" in capsys.readouterr().err
    assert main(resumed) == 0


@pytest.mark.parametrize(
    "options, message",
    [
        (["--task", "regression"], "label column 'species': regression needs numbers"),
        (["--columns", "beak"], "columns: no column named 'beak'"),
        (["--missing", "error"], "drop those rows with --missing drop"),
    ],
)
def test_bad_tables_are_one_line_and_exit_2(penguins, tmp_path, capsys, options, message):
    argv = ["train", "--data", str(penguins), "--out", str(tmp_path / "r"), "--epochs", "1"]
    assert main([*argv, "--missing", "drop", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("options", [["--task", "guess"], ["--delimiter", ";;"]])
def test_bad_table_option_values_exit_2(tmp_path, capsys, options):
    assert main(["train", "--out", str(tmp_path / "r"), *options]) == 2
    assert "Traceback" not in capsys.readouterr().err

"""House prices from a CSV file: `fungrad train` with its defaults, then predictions on new rows.

Without a path, a table of 300 houses is written the way pandas' ``to_csv`` writes one: an
unnamed index column, a text column (``neighbourhood``), a yes/no column (``garden``),
integer prices with as many values as rows, and a few ``NA`` cells. It is trained with the
command line's defaults plus ``--missing drop``; the loader says in one line each what it
decided (index dropped, rows dropped, regression chosen, columns encoded). Prices are
standardised for training, and the test RMSE and MAE come back in the prices' own units.
The saved run then predicts on new raw rows, read by column name with ``fungrad.load_run``.

    python examples/regression_csv.py [--quick] [--out DIR] [PATH --label-column NAME]

Given a PATH, that CSV file is trained on instead (its last column the target unless
``--label-column`` says otherwise), and the run predicts on the rows it held out for testing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import fungrad
from fungrad import cli

NEIGHBOURHOODS = {"Centre": 90_000, "Harbour": 60_000, "Hills": 30_000, "Suburbs": 0}
COLUMNS = ["area_m2", "rooms", "neighbourhood", "garden", "year_built", "price"]


def clean_price(area, rooms, neighbourhood, garden, year_built) -> float:
    """The price a house is worth before the noise of a sale."""
    premium = np.vectorize(NEIGHBOURHOODS.get)(neighbourhood)
    return (
        60_000 + 2_400 * area + 8_000 * rooms + premium
        + 25_000 * (garden == "yes") + 500 * (year_built - 1950)
    )  # fmt: skip


def houses(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` houses: the columns of :data:`COLUMNS`, prices rounded to whole units."""
    rng = np.random.default_rng(seed)
    area = rng.integers(35, 221, n)
    rooms = np.clip(np.round(area / 30 + rng.normal(0, 0.7, n)), 1, 8).astype(int)
    neighbourhood = rng.choice(list(NEIGHBOURHOODS), n)
    garden = np.where(rng.random(n) < 0.4, "yes", "no")
    year_built = rng.integers(1900, 2021, n)
    price = clean_price(area, rooms, neighbourhood, garden, year_built)
    price = np.round(price + rng.normal(0, 20_000, n)).astype(int)
    return dict(zip(COLUMNS, [area, rooms, neighbourhood, garden, year_built, price], strict=True))


def write_houses(path: Path, n: int, seed: int) -> float:
    """Write ``n`` houses as pandas would (index column, a few ``NA``); their price's std."""
    table = houses(n, seed)
    holes = {(7, "area_m2"), (42, "garden"), (120, "year_built"), (201, "area_m2")}
    lines = ["," + ",".join(COLUMNS)]
    for i in range(n):
        cells = ["NA" if (i, name) in holes else str(table[name][i]) for name in COLUMNS]
        lines.append(f"{i}," + ",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return float(np.std(table["price"]))


def write_new_houses(path: Path) -> np.ndarray:
    """Four houses to price, columns in another order and no price; their clean prices."""
    rows = [
        ("Hills", "no", 1985, 60, 2),
        ("Centre", "yes", 2010, 140, 5),
        ("Suburbs", "yes", 1930, 95, 3),
        ("Harbour", "no", 2018, 180, 6),
    ]
    lines = ["neighbourhood,garden,year_built,area_m2,rooms"]
    lines += [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    columns = [np.array(column) for column in zip(*rows, strict=True)]
    neighbourhood, garden, year_built, area, rooms = columns
    return clean_price(area, rooms, neighbourhood, garden, year_built)


def train(path: Path, out: Path, label_column: str, quick: bool) -> dict:
    """``fungrad train`` on ``path`` with its defaults and ``--missing drop``; the summary."""
    argv = ["train", "--data", str(path), "--label-column", label_column, "--missing", "drop"]
    argv += ["--out", str(out)] + (["--no-plot"] if quick else [])
    print("$ fungrad " + " ".join(argv))
    status = cli.main(argv)
    if status != 0:
        raise SystemExit(f"fungrad train exited with status {status}")
    return json.loads((out / "summary.json").read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, help="a CSV file (default: write one)")
    parser.add_argument("--label-column", default="-1", help="the target column (default: last)")
    parser.add_argument("--quick", action="store_true", help="no plot (for CI)")
    parser.add_argument("--out", type=Path, help="where files go (default: a temporary folder)")
    parser.add_argument("--rows", type=int, default=300, help="houses to write (default: 300)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        path, label_column = args.path, args.label_column
        if path is None:
            path, label_column = folder / "houses.csv", "price"
            spread = write_houses(path, args.rows, seed=0)
            print(f"wrote {args.rows} houses to {path}")
        summary = train(path, folder / "run", label_column, args.quick)
        run = fungrad.load_run(folder / "run")
        print(f"model inputs: {', '.join(run.features or [])}")
        if args.path is None:
            print(f"price standard deviation = {spread:.0f}")
        print(f"test RMSE = {summary['test_rmse']:.0f} (in the target's units)")
        print(f"test MAE = {summary['test_mae']:.0f}")
        if args.path is None:
            new = folder / "new_houses.csv"
            clean = write_new_houses(new)
            x, _ = run.read_rows(new)  # columns found by name, encoded as in training
            for predicted, worth in zip(run.predict(x), clean, strict=True):
                print(f"new house: predicted {predicted:9.0f}, worth {worth:9.0f}")
        else:
            x, y = run.test_rows()
            for predicted, actual in zip(run.predict(x[:5]), y[:5], strict=True):
                print(f"test row: predicted {predicted:.4g}, actual {actual:.4g}")


if __name__ == "__main__":
    main()

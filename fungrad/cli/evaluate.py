"""``fungrad evaluate``: a trained run's loss and accuracy (or RMSE and MAE) on labelled rows.

With ``--data`` the file is read with the run's loader options and must hold labels. Without
it, the run's own data are loaded and split again with its saved settings, and the test part
training held out is evaluated: :meth:`fungrad.runs.Run.evaluate` on the raw test rows, the
same function ``fungrad train`` reports its test figures with, so the two agree exactly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fungrad.cli import UsageError

__all__ = ["add_evaluate_parser", "run_evaluate", "evaluate_run"]


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``subparsers`` (from ``add_subparsers``).

    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="fungrad")
    >>> _ = add_evaluate_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["evaluate", "runs/fungrad", "--json"])
    >>> args.data, args.json
    (None, True)
    """
    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained run on labelled data (default: its own test part)",
        description="Print a trained run's loss and accuracy (or RMSE and MAE, in the target's "
        "units) on a labelled file, or, without --data, on the test part of its own data.",
    )
    evaluate.add_argument(
        "run", type=Path, metavar="RUN", help="a run folder of fungrad train, or a checkpoint file"
    )
    evaluate.add_argument(
        "--data",
        metavar="FILE",
        help="labelled rows: a .csv with the label column, a .npz with arrays x and y, an IDX "
        "images file with --labels, or 'digits' (default: the run's own test part)",
    )
    evaluate.add_argument(
        "--labels",
        metavar="IDX_LABELS",
        help="the IDX labels file that goes with FILE (default: the run's, for its own file)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    return evaluate


def evaluate_run(run, data: str | None = None, labels: str | None = None) -> dict:
    """The figures ``fungrad evaluate`` prints: metrics, ``rows``, ``data`` and ``part``.

    Args:
        run: a :class:`fungrad.runs.Run`.
        data: a labelled file, or ``None`` for the test part of the run's own data.
        labels: the IDX labels file that goes with ``data``.

    Raises:
        UsageError: for a file without labels, or a run that records no data to split.
    """
    config = run.config
    if data is None:
        if config.get("format") != "fungrad-run":
            raise UsageError(
                f"{run.path}: this checkpoint records no training data (it was not written by "
                "fungrad train); pass --data FILE with labelled rows"
            )
        if not config.get("test"):
            raise UsageError(f"{run.path}: the run kept no test part (test=0); pass --data FILE")
        x, y = run.test_rows()
        data, part = str(config["data"]), "test"
    else:
        if labels is None and str(data) == str(config.get("data")):
            labels = config.get("labels")
        x, y = run.read_rows(data, labels=labels)
        if y is None:
            raise UsageError(
                f"--data: {data} holds no labels (label column {run.label_column!r}); "
                "evaluate needs labelled rows"
            )
        part = "all"
    return {**run.evaluate(x, y), "rows": int(x.shape[0]), "data": str(data), "part": part}


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``fungrad evaluate`` with parsed arguments and return the exit status.

    Args:
        args: ``run``, ``data``, ``labels`` and ``json`` (see ``fungrad evaluate --help``).

    Returns:
        0 when the figures were printed.

    Raises:
        UsageError: for a file without labels, or no data to evaluate on.
        CheckpointError, ValueError, TypeError: from reading the run or the data (one line).
    """
    from fungrad.cli.cache import use_compile_cache

    use_compile_cache()
    from fungrad.cli.predict import open_run

    run = open_run(args.run)
    figures = evaluate_run(run, args.data, args.labels)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    where = "test part of " if figures["part"] == "test" else ""
    print(f"run: {run.path}")
    print(f"data: {where}{figures['data']} ({figures['rows']} rows)")
    for name in ("loss", "accuracy", "rmse", "mae"):
        if name in figures:
            print(f"{name}: {figures[name]:.6g}")
    return 0

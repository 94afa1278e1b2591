"""``fungrad predict``: a trained run's predictions on new raw rows, as CSV.

The file is read with the run's own loader options (label column, feature column names), the
saved preprocessing is applied, and one CSV row per input row is written, in the input's
order: a ``prediction`` column (the class label as in the training data, or the real value)
and, for classification, one ``score_<class>`` column per class. Without ``--output`` the
CSV goes to standard output and nothing else does.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

__all__ = ["add_predict_parser", "run_predict", "open_run", "predictions_csv"]


def add_predict_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``predict`` subcommand to ``subparsers`` (from ``add_subparsers``).

    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="fungrad")
    >>> _ = add_predict_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["predict", "runs/fungrad", "--data", "new.csv"])
    >>> str(args.run), args.data, args.output
    ('runs/fungrad', 'new.csv', None)
    """
    predict = subparsers.add_parser(
        "predict",
        help="predict with a trained run on new data",
        description="Read FILE with the run's loader options, apply its saved preprocessing "
        "and write one CSV row per input row: the prediction and, for classification, one "
        "score (probability) per class.",
    )
    predict.add_argument(
        "run", type=Path, metavar="RUN", help="a run folder of fungrad train, or a checkpoint file"
    )
    predict.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="the rows to predict on: a .csv (the label column may be absent), a .npz with an "
        "array x, an IDX images file, or 'digits'",
    )
    predict.add_argument(
        "--labels", metavar="IDX_LABELS", help="the IDX labels file that goes with FILE"
    )
    predict.add_argument(
        "--output",
        type=Path,
        metavar="PREDICTIONS.csv",
        help="write the CSV here, atomically (default: standard output)",
    )
    return predict


def open_run(path: Path):
    """:func:`fungrad.runs.load_run`, with double precision on for a float64 run."""
    import jax
    import numpy as np

    from fungrad import runs

    if runs.params_dtype(path) == np.float64:
        jax.config.update("jax_enable_x64", True)
    return runs.load_run(path)


def _column_names(run) -> list[str]:
    n_outputs = run.params[-1]["b"].shape[0]
    if run.task == "regression" or run.classes is None:
        names = ["prediction"] if n_outputs == 1 else [f"prediction_{j}" for j in range(n_outputs)]
        if run.task == "classification":
            names += [f"score_{j}" for j in range(n_outputs)]
        return names
    return ["prediction", *(f"score_{label}" for label in run.classes)]


def predictions_csv(run, x) -> str:
    """The CSV text of ``run``'s predictions on raw rows ``x`` (with its header row)."""
    import numpy as np

    predictions = np.asarray(run.predict(x))
    columns = [predictions.reshape(predictions.shape[0], -1).astype(str)]
    if run.task == "classification":
        columns.append(np.asarray(run.predict_scores(x)).astype(str))
    table = np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(_column_names(run))
    writer.writerows(table.tolist())
    return text.getvalue()


def run_predict(args: argparse.Namespace) -> int:
    """Run ``fungrad predict`` with parsed arguments and return the exit status.

    Args:
        args: ``run``, ``data``, ``labels`` and ``output`` (see ``fungrad predict --help``).

    Returns:
        0 when the predictions were written.

    Raises:
        CheckpointError: if ``run`` is not a run folder or a checkpoint (one line).
        ValueError, TypeError: from reading ``data``, naming the file and what was wrong.
    """
    from fungrad.cli.cache import use_compile_cache

    use_compile_cache()
    from fungrad.checkpoint import write_text

    run = open_run(args.run)
    x, _ = run.read_rows(args.data, labels=args.labels)
    text = predictions_csv(run, x)
    if args.output is None:
        sys.stdout.write(text)
    else:
        write_text(args.output, text)
        print(f"wrote {x.shape[0]} predictions to {args.output}", file=sys.stderr)
    return 0

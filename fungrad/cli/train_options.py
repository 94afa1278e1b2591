"""The ``fungrad train`` options, by group: data, tables, model, optimization and output.

The built-in names are spelled here so that ``--help`` does not import JAX; a test holds
them equal to the registries (:mod:`fungrad.optim`, :mod:`fungrad.activations`,
:mod:`fungrad.losses`, :mod:`fungrad.stopping`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fungrad.cli.arguments import (
    devices,
    float_list,
    fraction,
    int_list,
    positive_float,
    positive_int,
    seconds,
    stop_spec,
)  # fmt: skip

__all__ = ["add_train_options", "ACTIVATIONS", "LOSSES", "OPTIMIZERS"]

OPTIMIZERS = ("gd", "sgd", "momentum", "nesterov", "ema", "adam")  # fungrad.optim.NAMES
ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "gelu")
LOSSES = ("l2", "mse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy")
# The built-in activations and losses (fungrad.activations / fungrad.losses), named here so
# that --help does not import JAX; a test holds them equal to the registries.
STOP_FORMS = (
    "max_epochs:N, target:METRIC:VALUE[:min|max], plateau:METRIC:TOL:PATIENCE, "
    "grad_norm_below:TOL, no_improvement:METRIC:PATIENCE[:MIN_DELTA]"
)  # fungrad.stopping.SPEC_HELP, kept here so that --help does not import JAX


def add_train_options(train: argparse.ArgumentParser) -> None:
    """Add the ``train`` subcommand's option groups to ``train``."""
    _add_data_options(train.add_argument_group("data"))
    _add_table_options(train.add_argument_group("tables (.csv files)"))
    _add_model_options(train.add_argument_group("model"))
    _add_optimization_options(train.add_argument_group("optimization"))
    _add_output_options(train.add_argument_group("output"))


def _add_data_options(data) -> None:
    data.add_argument(
        "--data",
        default="digits",
        help="'digits' (bundled, 1797 8x8 images), a .npz with arrays x and y, a .csv, or an "
        "MNIST-style IDX images file, gzipped or not (default: digits)",
    )
    data.add_argument("--labels", help="the IDX labels file that goes with an IDX images file")
    data.add_argument(
        "--label-column",
        default="-1",
        help="the label column of a .csv, by name or index (default: -1, the last)",
    )
    data.add_argument(
        "--validation", type=fraction, default=0.1, help="validation fraction (default: 0.1)"
    )
    data.add_argument("--test", type=fraction, default=0.2, help="test fraction (default: 0.2)")
    data.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="do not standardise features (by default: mean and std of the training part)",
    )
    data.add_argument(
        "--max-bytes",
        type=positive_int,
        default=None,
        metavar="BYTES",
        help="the most bytes a data file may hold or inflate to (default: 4 GiB)",
    )
    data.add_argument(
        "--no-standardize-targets",
        dest="standardize_targets",
        action="store_false",
        help="do not standardise regression targets (by default: mean and std of the training "
        "part; predictions and RMSE/MAE are reported in the targets' own units)",
    )


def _delimiter(text: str) -> str:
    """``--delimiter``: one character; ``tab`` or ``\\t`` for a tab."""
    text = {"tab": "\t", "\\t": "\t"}.get(text, text)
    if len(text) != 1 or text in '"\r\n ':
        raise argparse.ArgumentTypeError(
            f"expected one character such as ',', ';' or tab, got {text!r}"
        )
    return text


def _add_table_options(table) -> None:
    table.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="what the label column of a .csv is (default: auto: text labels are classes; "
        "integers are classes when at most 100 distinct values and at most one per 10 rows; "
        "other numbers are regression)",
    )
    table.add_argument(
        "--columns",
        metavar="A,B,...",
        help="the only feature columns of a .csv to use, by name or index",
    )
    table.add_argument(
        "--drop-columns", metavar="A,B,...", help="feature columns of a .csv to leave out"
    )
    table.add_argument(
        "--missing",
        choices=("error", "drop"),
        default="error",
        help="rows of a .csv with missing values (NA, empty, ?, ...): an error (default) or "
        "drop them",
    )
    table.add_argument(
        "--delimiter",
        type=_delimiter,
        default=None,
        metavar="CHAR",
        help="the field delimiter of a .csv (default: detect ',', ';' or tab)",
    )
    table.add_argument(
        "--no-header",
        dest="header",
        action="store_const",
        const=False,
        default=None,
        help="the .csv has no header row (default: detect it)",
    )


def _add_model_options(model) -> None:
    model.add_argument(
        "--model",
        choices=("mlp", "cnn"),
        default="mlp",
        help="mlp, or cnn for square images (digits, IDX): two 3x3 convolutions with 16 and 32 "
        "filters, each with relu and 2x2 max pooling, then a dense layer; trained by the "
        "general engine (default: mlp)",
    )
    model.add_argument(
        "--hidden",
        type=int_list,
        default=[64],
        help="hidden layer widths, e.g. 128,64 (default: 64)",
    )
    model.add_argument(
        "--activation",
        default="relu",
        choices=ACTIVATIONS,
        help="hidden activation (default: relu)",
    )
    model.add_argument(
        "--output-activation",
        default="identity",
        choices=ACTIVATIONS,
        help="output activation (default: identity; the losses take logits)",
    )
    model.add_argument(
        "--loss",
        default="auto",
        choices=("auto", *LOSSES),
        help="training loss (default: auto: softmax_cross_entropy for class labels, l2 otherwise)",
    )
    model.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float64", "bfloat16", "float16"),
        help="parameter dtype (default: float32); bfloat16 and float16 train in mixed "
        "precision: loss, sums and optimizer statistics in float32",
    )


def _add_optimization_options(optimization) -> None:
    optimization.add_argument(
        "--optimizer",
        default="momentum",
        choices=OPTIMIZERS,
        help="update rule: gd, sgd, momentum (heavy ball), nesterov, ema (the lesson's momentum), "
        "adam (default: momentum)",
    )
    optimization.add_argument(
        "--learning-rate",
        type=positive_float,
        default=None,
        help="step size (default: 0.05; 0.02 for a regression; 0.01 for a cnn; adam 0.001)",
    )
    optimization.add_argument(
        "--beta", type=fraction, default=0.9, help="momentum coefficient in [0, 1) (default: 0.9)"
    )
    optimization.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="minibatch size (default: 32; gd always uses the full batch)",
    )
    optimization.add_argument(
        "--epochs", type=positive_int, default=30, help="the most epochs (default: 30)"
    )
    optimization.add_argument(
        "--stop",
        action="append",
        type=stop_spec,
        default=[],
        help=f"a stop condition, repeatable: {STOP_FORMS}. A target's direction follows "
        "the metric (accuracies: >=, losses: <=) unless given. no_improvement stops when the "
        "metric has not improved by more than MIN_DELTA for PATIENCE epochs (early stopping); "
        "plateau stops when it has barely changed (|change| <= TOL) for PATIENCE epochs, "
        "whichever way (e.g. no_improvement:val_loss:5, target:val_accuracy:0.97)",
    )
    optimization.add_argument(
        "--keep-best",
        nargs="?",
        const="val_loss",
        default=None,
        metavar="METRIC",
        help="predict with the parameters of the epoch with the best METRIC (default METRIC: "
        "val_loss); on by default when there is a validation split",
    )
    optimization.add_argument(
        "--no-keep-best",
        dest="keep_best",
        action="store_const",
        const=False,
        help="predict with the last epoch's parameters",
    )
    optimization.add_argument(
        "--gradients",
        default=None,
        choices=("backprop", "graph", "jax", "autodiff"),
        help="gradient source: backprop (the MLP engine), graph (the general engine), jax "
        "(jax.value_and_grad; autodiff is an alias) (default: backprop for an MLP, graph for "
        "a CNN)",
    )
    _add_run_options(optimization)


def _add_run_options(optimization) -> None:
    optimization.add_argument(
        "--restarts",
        type=positive_int,
        default=1,
        help="runs from different initial weights (default: 1)",
    )
    optimization.add_argument(
        "--learning-rates",
        type=float_list,
        default=None,
        help="a grid of learning rates, e.g. 0.01,0.05,0.1; every restart runs each (vmapped)",
    )
    optimization.add_argument(
        "--devices",
        type=devices,
        default=1,
        help="data-parallel devices: a number or 'all' (default: 1)",
    )
    optimization.add_argument(
        "--seed", type=int, default=0, help="seed for split, init and shuffling (default: 0)"
    )


def _add_output_options(output) -> None:
    output.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the run folder (default: a new runs/run-NNN); a folder that holds a run is "
        "refused unless --overwrite",
    )
    output.add_argument("--overwrite", action="store_true", help="replace the run held in --out")
    output.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the run in DIR with its saved settings (--epochs sets a new total cap)",
    )
    output.add_argument(
        "--save-every",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="save the training state after an epoch once SECONDS have passed since the last "
        "save (0: every epoch; always after the last) (default: 10)",
    )
    output.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    output.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    output.add_argument(
        "--no-plot", dest="plot", action="store_false", help="do not write plot.png"
    )
    output.add_argument(
        "--no-compile-cache",
        dest="compile_cache",
        action="store_false",
        help="do not keep compiled programs in the user's cache folder (also "
        "FUNGRAD_COMPILE_CACHE=0; the folder is $FUNGRAD_CACHE_DIR, else ~/.cache/fungrad/jax)",
    )

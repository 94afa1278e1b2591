"""The ``fungrad`` argument parser: subcommands, options and the types that check them.

Each argument type turns the text a user typed into a value, or raises
``argparse.ArgumentTypeError`` saying what was expected and what was given; the parser then
raises :class:`fungrad.cli.UsageError` with the option's name, which ``main`` prints as one
line.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from fungrad.cli import UsageError

__all__ = ["build_parser", "given_options"]

OPTIMIZERS = ("gd", "sgd", "momentum", "nesterov", "ema", "adam")  # fungrad.optim.NAMES
ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "gelu")
LOSSES = ("l2", "mse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy")
# The built-in activations and losses (fungrad.activations / fungrad.losses), named here so
# that --help does not import JAX; a test holds them equal to the registries.
STOP_FORMS = (
    "max_epochs:N, target:METRIC:VALUE[:min|max], plateau:METRIC:TOL:PATIENCE, "
    "grad_norm_below:TOL, no_improvement:METRIC:PATIENCE[:MIN_DELTA]"
)  # fungrad.stopping.SPEC_HELP, kept here so that --help does not import JAX


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line instead of usage + traceback
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def _int_list(text: str) -> list[int]:
    if text.strip() in ("", "none"):
        return []
    try:
        values = [int(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 64,32, got {text!r}"
        ) from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return values


def _float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.01,0.1, got {text!r}"
        ) from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected finite learning rates > 0, got {text!r}")
    return values


def _devices(text: str) -> int | str:
    return "all" if text == "all" else _positive_int(text)


def _stop_spec(text: str) -> str:
    from fungrad import stopping

    try:
        stopping.parse(text)  # validate early; the condition itself is built later
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text}")
    return value


def _version() -> str:
    """The installed package's version (without importing JAX)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fungrad")
    except PackageNotFoundError:
        from fungrad import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """The ``fungrad`` parser with its ``train`` and ``check`` subcommands.

    A parse error raises :class:`fungrad.cli.UsageError` (one line) instead of exiting.

    >>> args = build_parser().parse_args(["train", "--hidden", "32,16", "--epochs", "5"])
    >>> args.hidden, args.epochs, args.optimizer
    ([32, 16], 5, 'momentum')
    """
    parser = _Parser(
        prog="fungrad",
        description="Train neural networks with fungrad, a functional JAX framework.",
    )
    parser.add_argument("--version", action="version", version=f"fungrad {_version()}")
    sub = parser.add_subparsers(
        dest="command", metavar="{train,predict,evaluate,check}", parser_class=_Parser
    )

    train = sub.add_parser(
        "train",
        help="train an MLP (by default on the bundled handwritten digits)",
        description="Train an MLP and write a run folder: checkpoint.npz (saved during "
        "training), config.json, history.json, plot.png and summary.json. Exit status: 0 "
        "finished, 2 a usage mistake, 3 the run diverged (its last finite state saved), "
        "130 / 143 interrupted by SIGINT / SIGTERM after saving.",
    )
    _add_data_options(train.add_argument_group("data"))
    _add_table_options(train.add_argument_group("tables (.csv files)"))
    _add_model_options(train.add_argument_group("model"))
    _add_optimization_options(train.add_argument_group("optimization"))
    _add_output_options(train.add_argument_group("output"))
    from fungrad.cli.evaluate import add_evaluate_parser
    from fungrad.cli.predict import add_predict_parser

    add_predict_parser(sub)
    add_evaluate_parser(sub)
    _add_check(sub)
    parser.subcommands = dict(sub.choices)
    return parser


def given_options(argv: list[str]) -> set[str]:
    """The ``dest`` names of the options ``argv`` sets explicitly (defaults left out)."""
    parser = build_parser()
    for subparser in parser.subcommands.values():
        for action in subparser._actions:
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command"}


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
        "--validation", type=_fraction, default=0.1, help="validation fraction (default: 0.1)"
    )
    data.add_argument("--test", type=_fraction, default=0.2, help="test fraction (default: 0.2)")
    data.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        help="do not standardise features (by default: mean and std of the training part)",
    )
    data.add_argument(
        "--max-bytes",
        type=_positive_int,
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
        type=_int_list,
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
        type=_positive_float,
        default=None,
        help="step size (default: 0.05; 0.02 for a regression; 0.01 for a cnn; adam 0.001)",
    )
    optimization.add_argument(
        "--beta", type=_fraction, default=0.9, help="momentum coefficient in [0, 1) (default: 0.9)"
    )
    optimization.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="minibatch size (default: 32; gd always uses the full batch)",
    )
    optimization.add_argument(
        "--epochs", type=_positive_int, default=30, help="the most epochs (default: 30)"
    )
    optimization.add_argument(
        "--stop",
        action="append",
        type=_stop_spec,
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
        type=_positive_int,
        default=1,
        help="runs from different initial weights (default: 1)",
    )
    optimization.add_argument(
        "--learning-rates",
        type=_float_list,
        default=None,
        help="a grid of learning rates, e.g. 0.01,0.05,0.1; every restart runs each (vmapped)",
    )
    optimization.add_argument(
        "--devices",
        type=_devices,
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
        type=_seconds,
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


def _add_check(sub) -> None:
    check = sub.add_parser(
        "check",
        help="check both hand-written engines (backprop, graph) against jax.grad on this machine's backend",
        description="Compare fungrad's hand-written gradients with jax.value_and_grad on random "
        "architectures (every activation and loss) and print the largest relative errors. "
        "Exits with status 1 on disagreement.",
    )
    check.add_argument(
        "--trials",
        type=_positive_int,
        default=4,
        help="random architectures, each checked with every activation and loss (default: 4)",
    )
    check.add_argument(
        "--dtype",
        default="float64",
        choices=("float64", "float32"),
        help="precision (default: float64)",
    )
    check.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    check.add_argument(
        "--tolerance",
        type=_positive_float,
        default=None,
        help="largest relative error allowed (default: 1e-8 float64, 2e-3 float32)",
    )

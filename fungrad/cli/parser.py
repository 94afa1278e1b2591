"""The ``fungrad`` argument parser: its subcommands and the ``check`` options.

The ``train`` options live in :mod:`fungrad.cli.train_options` and the argument types in
:mod:`fungrad.cli.arguments`. A parse error raises :class:`fungrad.cli.UsageError` with the
option's name, which ``main`` prints as one line.
"""

from __future__ import annotations

import argparse

from fungrad.cli import UsageError
from fungrad.cli.arguments import name_list, positive_float, positive_int
from fungrad.cli.train_options import ACTIVATIONS, LOSSES, OPTIMIZERS, add_train_options

__all__ = ["ACTIVATIONS", "LOSSES", "OPTIMIZERS", "build_parser", "given_options"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line instead of usage + traceback
        raise UsageError(f"{self.prog}: {message}")


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
    add_train_options(train)
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
        type=positive_int,
        default=None,
        help="random networks (parameters, inputs, targets) per architecture, each checked "
        "with every activation and loss (default: 2; 4 with --thorough)",
    )
    check.add_argument(
        "--thorough",
        action="store_true",
        help="also 12 random architectures (depth 1-4, widths 1-32, batch 1-16): the long check",
    )
    check.add_argument(
        "--dtype",
        default="float64",
        choices=("float64", "float32"),
        help="precision (default: float64)",
    )
    check.add_argument(
        "--activations",
        type=name_list,
        default=None,
        metavar="NAME,...",
        help="check only these activations, e.g. tanh,my_activation (default: every "
        "registered one)",
    )
    check.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    check.add_argument(
        "--tolerance",
        type=positive_float,
        default=None,
        help="largest relative error allowed (default: 1e-8 float64, 2e-3 float32)",
    )

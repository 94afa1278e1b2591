"""fungrad: a purely functional JAX framework for training neural networks.

Models are pure functions over plain parameter pytrees (:mod:`fungrad.mlp`); gradients come
from the hand-written backprop engine (:mod:`fungrad.backprop`) or from JAX's autodiff; update
rules are optax transformations (:mod:`fungrad.optim`); training runs as compiled epochs
(:func:`fungrad.fit`) and vmapped restarts (:func:`fungrad.fit_restarts`), on one device or
sharded over many (:mod:`fungrad.parallel`); :mod:`fungrad.data` loads data sets and
:mod:`fungrad.checkpoint` saves whole training states, during training; :func:`fungrad.load_run`
applies a saved run to new raw data.
"""

import importlib
from typing import TYPE_CHECKING

_SUBMODULES = (
    "activations", "backprop", "checkpoint", "cnn", "data", "graph", "losses", "mlp", "optim",
    "parallel", "runs", "stopping",
)  # fmt: skip
_NAMES = {
    "Activation": "activations", "get_activation": "activations",
    "register_activation": "activations",
    "per_sample_value_and_grad": "backprop", "value_and_grad": "backprop",
    "Loss": "losses", "accuracy": "losses", "get_loss": "losses", "register_loss": "losses",
    "zero_one": "losses",
    "Run": "runs", "load_run": "runs",
    "StopCondition": "stopping",
    "FitResult": "train", "RestartsResult": "train", "StopTraining": "train",
    "TrainState": "train", "evaluate": "train", "fit": "train", "fit_restarts": "train",
}  # fmt: skip

if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from fungrad import (
        activations,
        backprop,
        checkpoint,
        cnn,
        data,
        graph,
        losses,
        mlp,
        optim,
        parallel,
        runs,
        stopping,
    )  # fmt: skip
    from fungrad.activations import Activation, get_activation, register_activation
    from fungrad.backprop import per_sample_value_and_grad, value_and_grad
    from fungrad.losses import Loss, accuracy, get_loss, register_loss, zero_one
    from fungrad.runs import Run, load_run
    from fungrad.stopping import StopCondition
    from fungrad.train import (
        FitResult,
        RestartsResult,
        StopTraining,
        TrainState,
        evaluate,
        fit,
        fit_restarts,
    )  # fmt: skip


def __getattr__(name: str):
    """Import a submodule or a public name on first use, so that ``import fungrad`` (and
    ``fungrad --help``) does not pay for importing JAX until something needs it."""
    if name in _SUBMODULES:
        module = importlib.import_module(f"fungrad.{name}")
    elif name in _NAMES:
        module = getattr(importlib.import_module(f"fungrad.{_NAMES[name]}"), name)
    else:
        raise AttributeError(f"module 'fungrad' has no attribute {name!r}")
    globals()[name] = module
    return module


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "Activation",
    "FitResult",
    "Loss",
    "RestartsResult",
    "Run",
    "StopCondition",
    "StopTraining",
    "TrainState",
    "accuracy",
    "activations",
    "backprop",
    "checkpoint",
    "cnn",
    "data",
    "evaluate",
    "fit",
    "fit_restarts",
    "get_activation",
    "get_loss",
    "graph",
    "load_run",
    "losses",
    "mlp",
    "optim",
    "parallel",
    "per_sample_value_and_grad",
    "register_activation",
    "register_loss",
    "runs",
    "stopping",
    "value_and_grad",
    "zero_one",
]

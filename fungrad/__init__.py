"""fungrad: a purely functional JAX framework for training neural networks.

Models are pure functions over plain parameter pytrees (:mod:`fungrad.mlp`); gradients come
from the hand-written backprop engine (:mod:`fungrad.backprop`) or from JAX's autodiff; update
rules are optax transformations (:mod:`fungrad.optim`); training runs as compiled epochs
(:func:`fungrad.fit`) and vmapped restarts (:func:`fungrad.fit_restarts`), on one device or
sharded over many (:mod:`fungrad.parallel`); :mod:`fungrad.data` loads data sets and
:mod:`fungrad.checkpoint` saves whole training states, during training; :func:`fungrad.load_run`
applies a saved run to new raw data.
"""

from fungrad import (
    activations,
    backprop,
    checkpoint,
    data,
    losses,
    mlp,
    optim,
    parallel,
    runs,
    stopping,
)
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
)

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
    "data",
    "evaluate",
    "fit",
    "fit_restarts",
    "get_activation",
    "get_loss",
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

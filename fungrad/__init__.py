"""fungrad: a purely functional JAX framework for training neural networks.

Models are pure functions over plain parameter pytrees (:mod:`fungrad.mlp`); gradients come
from the hand-written backprop engine (:mod:`fungrad.backprop`) or from JAX's autodiff; update
rules are optax transformations (:mod:`fungrad.optim`); training runs as compiled epochs
(:func:`fungrad.fit`) and vmapped restarts (:func:`fungrad.fit_restarts`), on one device or
sharded over many (:mod:`fungrad.parallel`); :mod:`fungrad.data` loads data sets and
:mod:`fungrad.checkpoint` saves whole training states.
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
    stopping,
)
from fungrad.activations import Activation, get_activation, register_activation
from fungrad.backprop import per_sample_value_and_grad, value_and_grad
from fungrad.losses import Loss, accuracy, get_loss, zero_one
from fungrad.stopping import StopCondition
from fungrad.train import FitResult, RestartsResult, TrainState, evaluate, fit, fit_restarts

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "FitResult",
    "Loss",
    "RestartsResult",
    "StopCondition",
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
    "losses",
    "mlp",
    "optim",
    "parallel",
    "per_sample_value_and_grad",
    "register_activation",
    "stopping",
    "value_and_grad",
    "zero_one",
]

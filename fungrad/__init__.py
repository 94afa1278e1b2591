"""fungrad: a purely functional JAX framework for training neural networks."""

from fungrad import activations, backprop, losses, mlp
from fungrad.activations import Activation, get_activation, register_activation
from fungrad.backprop import per_sample_value_and_grad, value_and_grad
from fungrad.losses import Loss, accuracy, get_loss, zero_one

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "Loss",
    "accuracy",
    "activations",
    "backprop",
    "get_activation",
    "get_loss",
    "losses",
    "mlp",
    "per_sample_value_and_grad",
    "register_activation",
    "value_and_grad",
    "zero_one",
]

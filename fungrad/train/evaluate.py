"""``evaluate``: the mean loss (and accuracy) of an MLP on a labelled set, compiled."""

from __future__ import annotations

from typing import Any

import jax

from fungrad import mlp
from fungrad.activations import Activation, get_activation
from fungrad.losses import Loss, get_loss
from fungrad.train import sources
from fungrad.train.program import check_data


def evaluate(
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    loss: str | Loss,
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
) -> dict[str, float]:
    """The mean loss (and accuracy, for classification losses) of an MLP on ``(x, y)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from fungrad import mlp
        >>> params = mlp.init(jax.random.key(0), [2, 3])
        >>> sorted(evaluate(params, jnp.ones((4, 2)), jnp.zeros(4, int),
        ...                 loss="softmax_cross_entropy"))
        ['accuracy', 'loss']
    """
    loss = get_loss(loss)
    mlp.check_params(params)
    x, y = check_data(("x", "y"), x, y, params, loss, True)
    _, eval_fn = sources.mlp_sources(
        loss,
        get_activation(activation),
        get_activation(output_activation, argname="output_activation"),
        "backprop",
    )
    return {name: float(value) for name, value in jax.jit(eval_fn)(params, x, y).items()}

"""``evaluate``: the mean loss (and accuracy) of a model on a labelled set, compiled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from fungrad import _checks
from fungrad.activations import Activation
from fungrad.losses import Loss
from fungrad.train import sources
from fungrad.train.program import check_data


def evaluate(
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    loss: str | Loss,
    model: Callable[[Any, jax.Array], jax.Array] | None = None,
    activation: str | Activation | None = None,
    output_activation: str | Activation | None = None,
) -> dict[str, float]:
    """The mean loss (and accuracy, for classification losses) of a model on ``(x, y)``.

    ``mean_i l(F(x_i; w), y_i)``, with ``F = model``, or an MLP when ``model`` is left out.

    Args:
        params: the parameters: an MLP's layer list, or any pytree ``model`` takes.
        x: inputs, one row per sample.
        y: targets, checked against the loss and the model's output shape.
        loss: a loss name or :class:`fungrad.Loss`.
        model: any pure ``model(params, x) -> y_hat`` (as in :func:`fungrad.fit`).
        activation: hidden activation of the MLP (default ``"relu"``); MLP only.
        output_activation: output activation of the MLP (default ``"identity"``); MLP only.

    Returns:
        ``{"loss": ...}``, with ``"accuracy"`` for classification losses, as Python floats.

    Raises:
        ValueError, TypeError: on bad data, params, a model whose output does not fit ``y``,
            or activations given with ``model``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from fungrad import mlp
        >>> params = mlp.init(jax.random.key(0), [2, 3])
        >>> sorted(evaluate(params, jnp.ones((4, 2)), jnp.zeros(4, int),
        ...                 loss="softmax_cross_entropy"))
        ['accuracy', 'loss']
        >>> evaluate({"w": jnp.ones((2, 1))}, jnp.ones((4, 2)), jnp.full(4, 2.0),
        ...          model=lambda p, x: x @ p["w"], loss="l2")
        {'loss': 0.0}
    """
    source = sources.resolve(
        loss, model=model, gradients="graph" if model is not None else "backprop",
        activation=activation, output_activation=output_activation,
    )  # fmt: skip
    _checks.floating_leaves("params", params)
    x, y = check_data(("x", "y"), x, y, params, source)
    return {name: float(value) for name, value in jax.jit(source.eval_fn)(params, x, y).items()}

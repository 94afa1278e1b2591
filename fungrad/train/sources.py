"""Gradient sources as values: where each step's ``(loss, grads)`` comes from.

A source is ``grad_fn(params, x, y, weights) -> (loss, grads, y_hat or None)``, where the
loss is the weighted mean ``sum_i w_i l(F(x_i), y_i) / sum_i w_i`` over the batch (padding rows
of a last partial batch have weight 0), paired with ``eval_fn(params, x, y) -> metrics``. The
loss is taken on the model's output in its accumulation dtype: float32 for a bfloat16 or float16
model, as the hand-written engine does.
Sources are cached on their static description, so the same settings give the same function
objects and a compiled training program is reused.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp

from fungrad import backprop, mlp
from fungrad.activations import Activation
from fungrad.losses import Loss, in_accumulation_dtype, zero_one


@functools.cache
def mlp_sources(loss: Loss, hidden: Activation, output: Activation, gradients: str):
    """``(grad_fn, eval_fn)`` of an MLP: by fungrad's backprop or by ``jax.value_and_grad``."""

    def model(params, x):
        return mlp.apply(params, x, activation=hidden, output_activation=output)

    def backprop_source(params, x, y, weights):
        return backprop.value_grad_and_output(
            params, x, y, activation=hidden, output_activation=output, loss=loss, weights=weights
        )

    def autodiff_source(params, x, y, weights):
        def objective(p):
            y_hat = model(p, x)
            per_sample = loss.fn(in_accumulation_dtype(y_hat), y)
            return jnp.sum(per_sample * weights) / jnp.sum(weights), y_hat

        (value, y_hat), grads = jax.value_and_grad(objective, has_aux=True)(params)
        return value, grads, y_hat

    def eval_fn(params, x, y):
        y_hat = model(params, x)
        metrics = {"loss": jnp.mean(loss.fn(in_accumulation_dtype(y_hat), y))}
        if loss.classification:
            metrics["accuracy"] = 1 - jnp.mean(zero_one(y_hat, y))
        return metrics

    grad_fn = backprop_source if gradients == "backprop" else autodiff_source
    return grad_fn, eval_fn


@functools.cache
def callable_source(gradients: Callable):
    """``(grad_fn, eval_fn, takes_weights)`` of a user's ``(params, x, y) -> (loss, grads)``."""
    try:
        takes_weights = "weights" in inspect.signature(gradients).parameters
    except (TypeError, ValueError):
        takes_weights = False

    def grad_fn(params, x, y, weights):
        if takes_weights:
            value, grads = gradients(params, x, y, weights=weights)
        else:
            value, grads = gradients(params, x, y)
        return value, grads, None

    def eval_fn(params, x, y):
        if takes_weights:
            return {"loss": gradients(params, x, y, weights=jnp.ones((x.shape[0],), x.dtype))[0]}
        return {"loss": gradients(params, x, y)[0]}

    return grad_fn, eval_fn, takes_weights

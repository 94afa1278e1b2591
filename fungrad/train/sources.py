"""Gradient sources as values: where each step's ``(loss, grads)`` comes from, for any model.

A :class:`Source` is everything the compiled loop needs to know about a model, and nothing
about its architecture: ``grad_fn(params, x, y, weights) -> (loss, grads, y_hat or None)``,
where the loss is the objective

    ``L(w) = sum_i w_i l(F(x_i; w), y_i) / sum_i w_i``

(the weighted mean over the batch of the per-sample loss; padding rows of a last partial batch
have weight ``w_i = 0``), ``eval_fn(params, x, y) -> metrics``, and the checks of the data and
of the params' layout for that model. The loss is taken on the model's output in its
accumulation dtype (float32 for a bfloat16 or float16 model), as the hand-written engines do.

Three kinds of source, one kind of value:

- :func:`mlp_source`: an MLP (:mod:`fungrad.mlp`) by the MLP engine (``"backprop"``), the
  general engine (``"graph"``) or ``jax.value_and_grad`` (``"jax"``);
- :func:`model_source`: any pure ``model(params, x) -> y_hat`` by ``"graph"`` or ``"jax"``;
- :func:`callable_source`: a user's ``(params, x, y[, weights]) -> (loss, grads)``.

Each is cached on its static description, so the same settings (the same ``model`` function
object included) give the same source, and the compiled training program is reused.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fungrad import backprop, graph, mlp
from fungrad.activations import Activation, get_activation
from fungrad.losses import Loss, get_loss, in_accumulation_dtype, zero_one
from fungrad.train import model_checks

ENGINES = ("backprop", "graph", "jax")
ALIASES = {"autodiff": "jax"}


class Source(NamedTuple):
    """A gradient source and the checks that go with its model. Hashable: a jit static value.

    Attributes:
        name: ``"backprop"``, ``"graph"``, ``"jax"`` or ``"callable"``.
        grad_fn: ``(params, x, y, weights) -> (loss, grads, y_hat or None)``.
        eval_fn: ``(params, x, y) -> {"loss": ..., ["accuracy": ...]}``.
        prepare: ``(params, x, y, names) -> (x, y)``: the params' layout and the data checked
            for this model (``names`` are what errors call ``x`` and ``y``); see
            :mod:`fungrad.train.model_checks`.
        layout: ``(params, x) -> "one" | "list" | "stacked"``: whether ``params`` are one run's,
            a list of runs', or runs stacked on a leading axis.
        describe: ``params -> dict``, the model part of a checkpoint's config.
        takes_weights: whether ``grad_fn`` honours the per-sample weights.
        metrics: what ``eval_fn`` reports (``grad_fn`` returns ``y_hat`` when it has accuracy).
    """

    name: str
    grad_fn: Callable
    eval_fn: Callable
    prepare: Callable
    layout: Callable
    describe: Callable
    takes_weights: bool
    metrics: tuple[str, ...]


def objective(model: Callable, loss: Loss) -> Callable:
    """``(params, x, y, weights) -> (L, y_hat)``: the weighted mean loss, and the outputs.

    Example:
        >>> import jax.numpy as jnp
        >>> from fungrad.losses import get_loss
        >>> f = objective(lambda p, x: x * p, get_loss("l2"))
        >>> value, _ = f(2.0, jnp.ones((3, 1)), jnp.zeros((3, 1)), jnp.array([1.0, 1.0, 0.0]))
        >>> float(value)
        4.0
    """

    def weighted_mean(params, x, y, weights):
        y_hat = model(params, x)
        per_sample = loss.fn(in_accumulation_dtype(y_hat), y)
        return jnp.sum(per_sample * weights) / jnp.sum(weights), y_hat

    return weighted_mean


def _metrics(loss: Loss) -> tuple[str, ...]:
    return ("loss", "accuracy") if loss.classification else ("loss",)


def _evaluation(model: Callable, loss: Loss) -> Callable:
    def eval_fn(params, x, y):
        y_hat = model(params, x)
        metrics = {"loss": jnp.mean(loss.fn(in_accumulation_dtype(y_hat), y))}
        if loss.classification:
            metrics["accuracy"] = 1 - jnp.mean(zero_one(y_hat, y))
        return metrics

    return eval_fn


def _differentiated(model: Callable, loss: Loss, engine: str) -> Callable:
    """``grad_fn`` of the objective by the general engine or by ``jax.value_and_grad``."""
    value_and_grad = graph.value_and_grad if engine == "graph" else jax.value_and_grad
    both = value_and_grad(objective(model, loss), has_aux=True)

    def grad_fn(params, x, y, weights):
        (value, y_hat), grads = both(params, x, y, weights)
        return value, grads, y_hat

    return grad_fn


# --------------------------------------------------------------------------- the MLP


@functools.cache
def mlp_source(loss: Loss, hidden: Activation, output: Activation, engine: str) -> Source:
    """An MLP's source: by the MLP engine (``"backprop"``), ``"graph"`` or ``"jax"``."""

    def model(params, x):
        return mlp.apply(params, x, activation=hidden, output_activation=output)

    def backprop_grad_fn(params, x, y, weights):
        return backprop.value_grad_and_output(
            params, x, y, activation=hidden, output_activation=output, loss=loss, weights=weights
        )

    def describe(params):
        return {
            "model": "mlp",
            "sizes": mlp.layer_sizes(params),
            "activation": hidden.name,
            "output_activation": output.name,
            "loss": loss.name,
            "gradients": engine,
        }

    grad_fn = backprop_grad_fn if engine == "backprop" else _differentiated(model, loss, engine)
    return Source(
        name=engine,
        grad_fn=grad_fn,
        eval_fn=_evaluation(model, loss),
        prepare=model_checks.mlp_prepare(loss),
        layout=model_checks.layout_by(model_checks.is_one_mlp),
        describe=describe,
        takes_weights=True,
        metrics=_metrics(loss),
    )


# --------------------------------------------------------------------------- any model


def _model_name(model: Callable) -> str:
    name = getattr(model, "__qualname__", None) or type(model).__qualname__
    module = getattr(model, "__module__", None)
    return f"{module}.{name}" if module else name


@functools.cache
def model_source(model: Callable, loss: Loss, engine: str) -> Source:
    """A pure ``model(params, x) -> y_hat``'s source: by ``"graph"`` or ``"jax"``."""

    def describe(params):
        return {
            "model": "custom",
            "function": _model_name(model),
            "loss": loss.name,
            "gradients": engine,
        }

    return Source(
        name=engine,
        grad_fn=_differentiated(model, loss, engine),
        eval_fn=_evaluation(model, loss),
        prepare=model_checks.model_prepare(model, loss),
        layout=model_checks.layout_by(model_checks.applies_to(model)),
        describe=describe,
        takes_weights=True,
        metrics=_metrics(loss),
    )


# --------------------------------------------------------------------------- a user's callable


@functools.cache
def callable_source(gradients: Callable, loss: Loss) -> Source:
    """A user's ``(params, x, y[, weights]) -> (loss, grads)`` as a source (no data checks)."""
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

    def prepare(params, x, y, names):
        return x, y

    def describe(params):
        return {"model": "custom", "loss": loss.name}

    return Source(
        name="callable",
        grad_fn=grad_fn,
        eval_fn=eval_fn,
        prepare=prepare,
        layout=model_checks.callable_layout,
        describe=describe,
        takes_weights=takes_weights,
        metrics=("loss",),
    )


# --------------------------------------------------------------------------- choosing one


def _engine(gradients: str, model) -> str:
    """``gradients`` as an engine name, checked against the model."""
    engine = ALIASES.get(gradients, gradients) if isinstance(gradients, str) else gradients
    if engine not in ENGINES:
        raise ValueError(
            "gradients: expected 'backprop' (the MLP engine), 'graph' (the general engine), "
            "'jax' (jax.value_and_grad; 'autodiff' is an alias) or a callable "
            f"(params, x, y) -> (loss, grads), got {gradients!r}"
        )
    if engine == "backprop" and model is not None:
        raise ValueError(
            "gradients: 'backprop' is the MLP engine and trains MLPs only (model left out); "
            "for model=... use gradients='graph' (the general engine, the default) or 'jax'"
        )
    return engine


def _check_model(model, activation, output_activation) -> None:
    if not callable(model):
        raise TypeError(
            f"model: expected a pure function model(params, x) -> y_hat, got {type(model).__name__}"
        )
    try:
        hash(model)
    except TypeError:
        raise TypeError(
            f"model: expected a hashable callable (the compiled program is cached on it), got "
            f"an unhashable {type(model).__name__}; wrap it in a function"
        ) from None
    for name, value in (("activation", activation), ("output_activation", output_activation)):
        if value is not None:
            raise ValueError(
                f"{name}: applies to the MLP only (model left out); with model=... the model "
                "applies its own activations"
            )


def resolve(
    loss: str | Loss,
    *,
    model: Callable | None = None,
    gradients: str | Callable | None = None,
    activation: str | Activation | None = None,
    output_activation: str | Activation | None = None,
) -> Source:
    """The :class:`Source` for a run's arguments, checked (see :func:`fungrad.fit`).

    ``gradients=None`` is ``"backprop"`` for an MLP (``model`` left out) and ``"graph"`` for
    any other model; ``"autodiff"`` is an alias of ``"jax"``.

    Raises:
        ValueError, TypeError: naming ``loss``, ``gradients``, ``model`` or ``activation``.
    """
    loss = get_loss(loss)
    hidden = get_activation("relu" if activation is None else activation)
    output = get_activation(
        "identity" if output_activation is None else output_activation,
        argname="output_activation",
    )
    if callable(gradients) and not isinstance(gradients, str):
        if model is not None:
            raise ValueError(
                "model: a gradients callable computes the loss and gradients itself, so "
                "model=... would go unused; pass one or the other"
            )
        return callable_source(gradients, loss)
    if model is not None:
        _check_model(model, activation, output_activation)
        return model_source(
            model, loss, _engine("graph" if gradients is None else gradients, model)
        )
    engine = _engine("backprop" if gradients is None else gradients, None)
    return mlp_source(loss, hidden, output, engine)

"""The checks that go with each kind of model: its data, and the layout of its params.

A gradient source (:mod:`fungrad.train.sources`) carries two checks built here, so the loop
never asks what kind of model it trains:

- ``prepare(params, x, y, names) -> (x, y)``: the inputs and targets checked against the
  model. For an MLP, the params' layout and ``x (n, n_in)``; for any other model, its output
  for one row of ``x``, read by ``jax.eval_shape`` (shapes only: nothing is computed), must be
  one row ``(1, k)``. Then the targets are checked against the loss's kind of target and the
  output width ``k`` (:func:`fungrad.losses.prepare_targets`).
- ``layout(params, x) -> "one" | "list" | "stacked"``: whether ``params`` are one run's, a
  list of runs', or runs stacked on a leading axis (for :func:`fungrad.fit_restarts`). For a
  model, one run's params are those it applies to.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fungrad import mlp
from fungrad.losses import Loss, prepare_targets

# --------------------------------------------------------------------------- the MLP


def is_one_mlp(params, x=None) -> bool:
    """Whether ``params`` are one MLP's layer list (each ``w`` 2-D), not stacked runs."""
    return (
        isinstance(params, (list, tuple))
        and bool(params)
        and all(isinstance(layer, dict) and jnp.ndim(layer.get("w")) == 2 for layer in params)
    )


def mlp_prepare(loss: Loss) -> Callable:
    """``prepare`` for an MLP: its params' layout, ``x (n, n_in)``, and ``y`` for its outputs."""

    def prepare(params, x, y, names):
        x_name, y_name = names
        mlp.check_params(params)
        x = mlp.check_input(params, x, argname=x_name)
        if x.ndim != 2:
            raise ValueError(f"{x_name}: expected a batch (n_samples, n_in), got shape {x.shape}")
        k = mlp.layer_sizes(params)[-1]
        return x, prepare_targets(loss, y, (x.shape[0], k), argname=y_name)

    return prepare


# --------------------------------------------------------------------------- any model


def _one_row(x) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((1, *np.shape(x)[1:]), jnp.result_type(x))


def _is_one_output_row(out) -> bool:
    return isinstance(out, jax.ShapeDtypeStruct) and out.ndim == 2 and out.shape[0] == 1


def output_of(model: Callable, params, x, x_name: str) -> jax.ShapeDtypeStruct:
    """The shape and dtype of ``model``'s output for one row of ``x``; nothing is computed.

    Raises:
        ValueError: naming ``model`` if it cannot be applied to ``params`` and a row of ``x``,
            or if its output is not one row ``(1, k)``.
    """
    row = _one_row(x)
    try:
        out = jax.eval_shape(model, params, row)
    except (TypeError, ValueError, IndexError, KeyError, AttributeError) as error:
        raise ValueError(
            f"model: could not be applied to params and one row of {x_name} (shape "
            f"{row.shape}): {error}"
        ) from error
    if not _is_one_output_row(out):
        got = f"shape {out.shape}" if isinstance(out, jax.ShapeDtypeStruct) else type(out).__name__
        raise ValueError(
            f"model: expected one output row (batch, k) per row of {x_name}, got {got} for "
            f"one row of shape {row.shape}"
        )
    return out


def model_prepare(model: Callable, loss: Loss) -> Callable:
    """``prepare`` for any model: ``y`` checked against its output width; ``x`` as given."""

    def prepare(params, x, y, names):
        x_name, y_name = names
        k = output_of(model, params, x, x_name).shape[1]
        return x, prepare_targets(loss, y, (x.shape[0], k), argname=y_name)

    return prepare


def applies_to(model: Callable) -> Callable:
    """``(params, x) -> bool``: whether ``model`` takes ``params`` as one run's params."""

    def is_one_run(params, x) -> bool:
        try:
            out = jax.eval_shape(model, params, _one_row(x))
        except Exception:  # noqa: BLE001 (a probe: params the model cannot take are not one run)
            return False
        return _is_one_output_row(out)

    return is_one_run


# --------------------------------------------------------------------------- layouts


def layout_by(is_one_run: Callable) -> Callable:
    """``layout``: one run's params, a list of such, or else runs stacked on a leading axis."""

    def layout(params, x) -> str:
        if is_one_run(params, x):
            return "one"
        if isinstance(params, (list, tuple)) and params and is_one_run(params[0], x):
            return "list"
        return "stacked"

    return layout


def callable_layout(params, x) -> str:
    """``layout`` when no model is known: a list whose items are not dicts is a list of runs."""
    if is_one_mlp(params):
        return "one"
    if isinstance(params, (list, tuple)) and params and not isinstance(params[0], dict):
        return "list"
    return "stacked"

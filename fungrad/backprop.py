"""The hand-written backprop engine: reverse mode for MLPs, rule by rule.

The classic algorithm, batched with matrix products:

1. **Forward**, keeping what the backward pass needs: for each layer the input ``a_{k-1}``
   and the pre-activation ``z_k = a_{k-1} @ w_k + b_k``.
2. **Loss rule**: ``delta = dL/dy_hat``; for the batch mean ``L = 1/N sum_i l_i`` this is
   ``dl/dy_hat_i / N`` for each row.
3. **Output activation rule**: ``delta = delta * g'(z_K)``.
4. **For each layer, last to first** (the dense rule, then the hidden activation rule)::

        db = sum_i delta_i
        dw = a_{k-1}.T @ delta
        delta = (delta @ w_k.T) * f'(z_{k-1})

Each rule is a small pure function, a vector-Jacobian product (VJP): given the cotangent of an
operation's output it returns the cotangents of its inputs. For ``h = x @ w`` with one sample
the Jacobian ``dh/dx`` is ``w.T`` (the Jacobian of ``A x`` is ``A``, with ``A = w.T``), so its
VJP is ``delta @ w.T``; the weight gradient ``x.T @ delta`` sums the per-sample outer products,
since the same weights are used by every sample (branches add).

**Mixed precision.** With ``bfloat16`` or ``float16`` parameters the forward and backward
passes run in that dtype, while the loss, its gradient ``dl/dy_hat`` and the batch mean are
computed in float32 (:func:`fungrad.losses.accumulation_dtype`); the cotangent ``delta`` is then
rounded to the parameters' dtype, exactly where ``jax.grad`` of the same objective rounds it.
The bias gradient's sum over the batch accumulates in float32 (``jnp.sum`` does so for narrow
floats), and so do the matrix products on XLA's CPU backend and on GPU tensor cores; the
gradients come back in the parameters' dtype.

Nothing here calls ``jax.grad``, ``jax.vjp``, ``jax.jvp`` or ``jax.jacfwd``; the tests hold the
result equal to them. The same rules are installed with ``jax.custom_vjp`` in :func:`apply`, so
``jax.grad`` of any function that calls it runs through fungrad's rules.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fungrad.activations import Activation, get_activation
from fungrad.losses import (
    Loss,
    accumulation_dtype,
    get_loss,
    in_accumulation_dtype,
    prepare_targets,
)
from fungrad.mlp import Params, check_input, check_params

__all__ = [
    "dense_vjp",
    "activation_vjp",
    "loss_vjp",
    "forward",
    "backward",
    "value_and_grad",
    "per_sample_value_and_grad",
    "apply",
]

# --------------------------------------------------------------------------- VJP rules


def dense_vjp(
    x: jax.Array, w: jax.Array, delta: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """VJP of ``z = x @ w + b``: returns ``(dx, dw, db)`` for the cotangent ``delta`` of ``z``.

    ``dx = delta @ w.T``, ``dw = x.T @ delta``, ``db = sum over the batch of delta``. For one
    sample (``x`` of shape ``(n_in,)``) ``dw`` is the outer product ``x delta^T``.
    """
    dx = delta @ w.T
    if x.ndim == 1:
        return dx, jnp.outer(x, delta), delta
    return dx, x.T @ delta, jnp.sum(delta, axis=0)


def activation_vjp(activation: Activation, z: jax.Array, delta: jax.Array) -> jax.Array:
    """VJP of an elementwise ``a = f(z)``: ``delta_z = delta_a * f'(z)`` (diagonal Jacobian)."""
    return delta * activation.derivative(z)


def loss_vjp(loss: Loss, y_hat: jax.Array, y: jax.Array, weights: jax.Array) -> jax.Array:
    """Cotangent of ``y_hat`` for ``L = sum_i weights_i l(y_hat_i, y_i) / sum_i weights_i``.

    Row ``i`` is ``weights_i / sum(weights) * dl/dy_hat_i``; with unit weights, ``1/N dl/dy_hat_i``.
    It has the dtype of ``loss.grad``'s result (float32 for a built-in loss of bfloat16 outputs).
    """
    scale = weights / jnp.sum(weights)
    return loss.grad(y_hat, y) * scale[:, None].astype(y_hat.dtype)


# --------------------------------------------------------------------------- forward, backward


Residuals = list[tuple[jax.Array, jax.Array]]


def forward(
    params: Params, x: jax.Array, hidden: Activation, output: Activation
) -> tuple[jax.Array, Residuals]:
    """Forward pass that keeps ``(a_{k-1}, z_k)`` for each layer; returns ``(y_hat, residuals)``."""
    residuals = []
    a = x
    for i, layer in enumerate(params):
        z = a @ layer["w"] + layer["b"]
        residuals.append((a, z))
        a = output.fn(z) if i == len(params) - 1 else hidden.fn(z)
    return a, residuals


def backward(
    params: Params,
    residuals: Residuals,
    delta: jax.Array,
    hidden: Activation,
    output: Activation,
) -> tuple[Params, jax.Array]:
    """Propagate the cotangent ``delta`` of ``y_hat`` back; returns ``(grads, dx)``.

    ``grads`` has exactly the layout of ``params``; ``dx`` is the cotangent of the input.
    """
    grads: list[dict[str, jax.Array]] = [{} for _ in params]
    delta = activation_vjp(output, residuals[-1][1], delta)
    for k in range(len(params) - 1, -1, -1):
        a_in, _ = residuals[k]
        dx, dw, db = dense_vjp(a_in, params[k]["w"], delta)
        # A cotangent has its primal's dtype (as with jax.grad): float32 params fed float64
        # data get float32 gradients, so an optimizer step cannot silently promote them.
        grads[k] = {"w": dw.astype(params[k]["w"].dtype), "b": db.astype(params[k]["b"].dtype)}
        delta = activation_vjp(hidden, residuals[k - 1][1], dx) if k > 0 else dx.astype(a_in.dtype)
    if isinstance(params, tuple):
        return tuple(grads), delta
    return grads, delta


# --------------------------------------------------------------------------- value_and_grad


def _batched(params, x, y, loss, weights):
    """Validate and promote one sample to a batch of one; return ``(x, y, weights)``."""
    check_params(params)
    x = check_input(params, x)
    y = jnp.asarray(y)
    if x.ndim == 1:
        x, y = x[None], y[None]
    k = jnp.shape(params[-1]["w"])[1]
    y = prepare_targets(loss, y, (x.shape[0], k))
    if weights is None:
        weights = jnp.ones((x.shape[0],), accumulation_dtype(x.dtype))
    else:
        weights = in_accumulation_dtype(jnp.asarray(weights))
        if weights.shape != (x.shape[0],):
            raise ValueError(f"weights: expected shape ({x.shape[0]},), got {weights.shape}")
    return x, y, weights


def _loss_and_delta(loss: Loss, y_hat: jax.Array, y: jax.Array, weights: jax.Array):
    """The weighted mean loss and the cotangent ``delta`` of ``y_hat``.

    Both are computed from ``y_hat`` in its accumulation dtype (float32 for bfloat16 or
    float16 outputs); ``delta`` is then rounded back to ``y_hat``'s dtype.
    """
    wide = in_accumulation_dtype(y_hat)
    per_sample = loss.fn(wide, y)
    value = jnp.sum(per_sample * weights.astype(per_sample.dtype)) / jnp.sum(weights)
    delta = loss_vjp(loss, wide, y, weights)
    if wide.dtype != y_hat.dtype:
        delta = delta.astype(y_hat.dtype)
    return value, delta


def value_grad_and_output(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
    loss: str | Loss = "l2",
    weights: jax.Array | None = None,
) -> tuple[jax.Array, Params, jax.Array]:
    """Like :func:`value_and_grad`, and also returns the batched model output ``y_hat``."""
    hidden = get_activation(activation)
    output = get_activation(output_activation, argname="output_activation")
    loss = get_loss(loss)
    x, y, weights = _batched(params, x, y, loss, weights)
    y_hat, residuals = forward(params, x, hidden, output)
    value, delta = _loss_and_delta(loss, y_hat, y, weights)
    grads, _ = backward(params, residuals, delta, hidden, output)
    return value, grads, y_hat


def value_and_grad(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
    loss: str | Loss = "l2",
    weights: jax.Array | None = None,
) -> tuple[jax.Array, Params]:
    """Loss and gradient of ``L(w) = 1/N sum_i l(F(x_i; w), y_i)``, by hand-written backprop.

    Equal to ``jax.value_and_grad`` of the same objective, computed by the engine's own rules
    (see the module docstring).

    Args:
        params: the MLP's layer list.
        x: a batch ``(batch, n0)``, or one sample ``(n0,)``.
        y: targets in the form the loss takes (see :func:`fungrad.losses.prepare_targets`).
        activation: hidden activation (name or :class:`fungrad.Activation`).
        output_activation: the last layer's activation.
        loss: a loss name or :class:`fungrad.Loss`.
        weights: optional per-sample weights ``(batch,)``; the objective becomes
            ``sum_i weights_i l_i / sum_i weights_i`` (a zero weight masks a padded sample).

    Returns:
        ``(loss_value, grads)`` with ``grads`` shaped exactly like ``params`` and in their
        dtype; for ``bfloat16``/``float16`` params the loss value is float32 (see the module
        docstring on mixed precision).

    Raises:
        ValueError, TypeError: on bad parameters, shapes, labels or names; ``TypeError`` for
            integer or bool parameters.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from fungrad import mlp
        >>> params = mlp.init(jax.random.key(0), [3, 4, 2])
        >>> x, y = jnp.ones((5, 3)), jnp.zeros((5, 2))
        >>> value, grads = value_and_grad(params, x, y, loss="mse")
        >>> grads[0]["w"].shape
        (3, 4)
    """
    value, grads, _ = value_grad_and_output(
        params,
        x,
        y,
        activation=activation,
        output_activation=output_activation,
        loss=loss,
        weights=weights,
    )
    return value, grads


def per_sample_value_and_grad(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
    loss: str | Loss = "l2",
) -> tuple[jax.Array, Params]:
    """Each sample's loss and gradient, ``l(F(x_i; w), y_i)`` and its ``grad_w``, via ``vmap``.

    This is the lesson's inner loop over samples, run as one batched program: the engine is
    mapped over the leading axis of ``x`` and ``y``. The mean of the per-sample gradients is the
    batch gradient of :func:`value_and_grad`.

    Returns:
        ``(losses (batch,), grads)`` where each leaf of ``grads`` has a leading batch axis.

    Raises:
        ValueError, TypeError: on bad parameters, shapes, labels or names, as
            :func:`value_and_grad`; ``x`` must be a batch ``(batch, n0)``.
    """
    # Check the whole batch here: inside vmap the labels are traced, so their range could not be.
    check_params(params)
    x = check_input(params, x)
    if x.ndim != 2:
        raise ValueError(f"x: expected a batch (batch, {x.shape[0]}) of samples, got {x.shape}")
    k = jnp.shape(params[-1]["w"])[1]
    y = prepare_targets(get_loss(loss), y, (x.shape[0], k))

    def one(x_i, y_i):
        return value_and_grad(
            params,
            x_i,
            y_i,
            activation=activation,
            output_activation=output_activation,
            loss=loss,
        )

    return jax.vmap(one)(x, y)


# --------------------------------------------------------------------------- custom_vjp


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _apply(params, x, hidden, output):
    return forward(params, x, hidden, output)[0]


def _apply_forward(params, x, hidden, output):
    y_hat, residuals = forward(params, x, hidden, output)
    return y_hat, (params, residuals)


def _apply_backward(hidden, output, saved, cotangent):
    params, residuals = saved
    grads, dx = backward(params, residuals, cotangent, hidden, output)
    return grads, dx


_apply.defvjp(_apply_forward, _apply_backward)


def apply(
    params: Params,
    x: jax.Array,
    *,
    activation: str | Activation = "relu",
    output_activation: str | Activation = "identity",
) -> jax.Array:
    """:func:`fungrad.mlp.apply` whose reverse-mode derivative is fungrad's backprop.

    The forward value is the same; ``jax.grad``, ``jax.vjp`` or ``jax.jacrev`` of any function
    that calls it run through the hand-written rules (with respect to both ``params`` and
    ``x``). Forward-mode (``jax.jvp``, ``jax.jacfwd``) is not defined for it.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from fungrad import mlp
        >>> params = mlp.init(jax.random.key(0), [3, 1])
        >>> f = lambda x: apply(params, x, activation="tanh")[0]
        >>> bool(jnp.allclose(jax.grad(f)(jnp.ones(3)), params[0]["w"][:, 0]))
        True
    """
    check_params(params)
    x = check_input(params, x)
    hidden = get_activation(activation)
    output = get_activation(output_activation, argname="output_activation")
    return _apply(params, x, hidden, output)

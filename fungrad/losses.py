"""Per-sample losses ``l(y_hat, y)`` with hand-written ``dl/dy_hat``, and metrics.

Every loss here works on a batch: ``y_hat`` has shape ``(batch, k)`` and the loss returns one
value per sample, shape ``(batch,)``. The training objective is always the mean over the
batch, ``L = 1/N sum_i l(y_hat_i, y_i)`` (or a weighted mean when a last minibatch is padded).

===============================  ==========================================  ==========================
name                             l(y_hat, y)                                 dl/dy_hat
===============================  ==========================================  ==========================
``l2``                           ``sum_j (y_hat_j - y_j)^2``                 ``2 (y_hat - y)``
``mse``                          ``1/k sum_j (y_hat_j - y_j)^2``             ``2/k (y_hat - y)``
``softmax_cross_entropy``        ``sum(p) logsumexp(z) - sum_j p_j z_j``     ``sum(p) softmax(z) - p``
``sigmoid_binary_cross_entropy`` ``sum_j log(1 + e^z_j) - z_j y_j``            ``sigmoid(z) - y``
===============================  ==========================================  ==========================

For ``softmax_cross_entropy`` the target is either integer class labels ``(batch,)`` (then
``p`` is one-hot) or probabilities ``(batch, k)``; ``z`` are the logits. The metrics
``zero_one`` (the 0-1 loss) and ``accuracy`` are not differentiable and cannot be trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

__all__ = ["Loss", "get_loss", "loss_names", "prepare_targets", "zero_one", "accuracy"]


class Loss(NamedTuple):
    """A per-sample loss and its hand-written gradient with respect to ``y_hat``.

    Attributes:
        name: the name shown in errors and histories.
        fn: ``(y_hat (batch, k), y) -> (batch,)`` per-sample losses.
        grad: ``(y_hat, y) -> (batch, k)``, the per-sample ``dl/dy_hat``.
        classification: whether the outputs are logits of classes (accuracy is then reported).
    """

    name: str
    fn: Callable[[jax.Array, jax.Array], jax.Array]
    grad: Callable[[jax.Array, jax.Array], jax.Array]
    classification: bool


def _l2(y_hat, y):
    y = y.astype(y_hat.dtype)
    return jnp.sum((y_hat - y) ** 2, axis=-1)


def _l2_grad(y_hat, y):
    y = y.astype(y_hat.dtype)
    return 2 * (y_hat - y)


def _mse(y_hat, y):
    y = y.astype(y_hat.dtype)
    return jnp.mean((y_hat - y) ** 2, axis=-1)


def _mse_grad(y_hat, y):
    y = y.astype(y_hat.dtype)
    return 2 * (y_hat - y) / y_hat.shape[-1]


def _as_probabilities(y, logits):
    if jnp.issubdtype(y.dtype, jnp.integer):
        return jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype)
    return y.astype(logits.dtype)


def _softmax_cross_entropy(logits, y):
    p = _as_probabilities(y, logits)
    return jnp.sum(p, axis=-1) * logsumexp(logits, axis=-1) - jnp.sum(p * logits, axis=-1)


def _softmax_cross_entropy_grad(logits, y):
    p = _as_probabilities(y, logits)
    return jnp.sum(p, axis=-1, keepdims=True) * jax.nn.softmax(logits, axis=-1) - p


def _sigmoid_binary_cross_entropy(logits, y):
    y = y.astype(logits.dtype)
    # softplus(z) - z y = log(1 + e^z) - z y, computed as logaddexp(z, 0) so it is stable for
    # large |z| and smooth at z = 0 (a max(z, 0) form would have a kink there for autodiff).
    per_output = jnp.logaddexp(logits, 0) - logits * y
    return jnp.sum(per_output, axis=-1)


def _sigmoid_binary_cross_entropy_grad(logits, y):
    return jax.nn.sigmoid(logits) - y.astype(logits.dtype)


_REGISTRY: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("l2", _l2, _l2_grad, False),
        Loss("mse", _mse, _mse_grad, False),
        Loss("softmax_cross_entropy", _softmax_cross_entropy, _softmax_cross_entropy_grad, True),
        Loss(
            "sigmoid_binary_cross_entropy",
            _sigmoid_binary_cross_entropy,
            _sigmoid_binary_cross_entropy_grad,
            True,
        ),
    )
}
_METRICS = ("zero_one", "accuracy")


def loss_names() -> tuple[str, ...]:
    """The names :func:`get_loss` accepts."""
    return tuple(_REGISTRY)


def get_loss(loss: str | Loss, *, argname: str = "loss") -> Loss:
    """Resolve a name or a :class:`Loss` to a :class:`Loss`.

    Raises:
        ValueError: for an unknown name, or a metric (``zero_one``, ``accuracy``) asked for as
            a training loss: it has zero gradient almost everywhere.
        TypeError: for anything that is neither a string nor a :class:`Loss`.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        if loss in _METRICS:
            raise ValueError(
                f"{argname}: {loss!r} is a metric, not a differentiable loss (its gradient is "
                f"zero almost everywhere); train with one of {', '.join(loss_names())}"
            )
        try:
            return _REGISTRY[loss]
        except KeyError:
            raise ValueError(
                f"{argname}: unknown loss {loss!r}; expected one of {', '.join(loss_names())}"
            ) from None
    raise TypeError(f"{argname}: expected a loss name or fungrad.Loss, got {type(loss).__name__}")


def _is_concrete(x) -> bool:
    """Whether this process can read ``x``'s values: not traced, not split across hosts."""
    return not isinstance(x, jax.core.Tracer) and getattr(x, "is_fully_addressable", True)


def prepare_targets(loss: Loss, y, y_hat_shape: tuple[int, ...], *, argname: str = "y"):
    """Check ``y`` against the loss and the model's output shape; return it in batched form.

    ``y_hat_shape`` is ``(batch, k)``. Regression losses and the sigmoid loss take ``y`` of
    shape ``(batch, k)`` (or ``(batch,)`` when ``k == 1``); the softmax loss takes integer
    labels ``(batch,)`` in ``[0, k)`` or probabilities ``(batch, k)``. Label ranges are checked
    when ``y`` is concrete (outside ``jit``). Integer or boolean targets for the other losses
    are converted to floats.

    Raises:
        ValueError: on a shape that does not fit, or integer labels out of range.
    """
    y = jnp.asarray(y)
    batch, k = y_hat_shape
    if loss.name == "softmax_cross_entropy" and jnp.issubdtype(y.dtype, jnp.integer):
        if y.shape != (batch,):
            raise ValueError(
                f"{argname}: integer class labels for softmax_cross_entropy must have shape "
                f"({batch},), got {y.shape}"
            )
        if _is_concrete(y) and y.size:
            # Reduce in NumPy: a jnp reduction of concrete labels closed over by a jitted
            # function would itself be traced, and int() of it would fail.
            labels = np.asarray(y)
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= k:
                raise ValueError(
                    f"{argname}: class labels must lie in [0, {k}) for a model with {k} outputs, "
                    f"got labels in [{low}, {high}]"
                )
        return y
    if y.shape == (batch,) and k == 1 and loss.name != "softmax_cross_entropy":
        y = y[:, None]
    if y.shape != (batch, k):
        expected = f"({batch}, {k})"
        if loss.name == "softmax_cross_entropy":
            expected = f"integer labels ({batch},) or probabilities ({batch}, {k})"
        elif k == 1:
            expected += f" or ({batch},)"
        raise ValueError(
            f"{argname}: expected shape {expected} for loss {loss.name!r}, got {y.shape}"
        )
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(jnp.result_type(float))
    return y


def zero_one(y_hat: jax.Array, y: jax.Array) -> jax.Array:
    """The 0-1 loss per sample: 1 where the prediction is wrong, 0 where it is right.

    With one output the prediction is ``y_hat > 0`` (logits of a binary classifier) against
    ``y > 0.5``; with several it is ``argmax(y_hat)`` against the label (or ``argmax(y)`` for
    one-hot / probability targets). Not differentiable: a metric, never a training loss.
    """
    y_hat = jnp.atleast_2d(y_hat)
    if y_hat.shape[-1] == 1:
        predicted = y_hat[..., 0] > 0
        truth = jnp.reshape(y, predicted.shape) > 0.5
        return (predicted != truth).astype(y_hat.dtype)
    labels = y if jnp.issubdtype(jnp.asarray(y).dtype, jnp.integer) else jnp.argmax(y, axis=-1)
    return (jnp.argmax(y_hat, axis=-1) != jnp.reshape(labels, y_hat.shape[:-1])).astype(y_hat.dtype)


def accuracy(y_hat: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of correctly classified samples: ``1 - mean(zero_one)``."""
    return 1 - jnp.mean(zero_one(y_hat, y))

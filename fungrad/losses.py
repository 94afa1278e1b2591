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

**Low precision.** A model may run in ``bfloat16`` or ``float16``, but its loss is accumulated
in float32: :func:`accumulation_dtype` maps those dtypes to ``float32`` (``float32`` and
``float64`` map to themselves), the built-in losses cast ``y_hat`` to it before any sum or
``logsumexp``, so their values and gradients come back in float32, and the engines and the
training loop take the batch mean in it too (:func:`in_accumulation_dtype`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from fungrad._checks import one_of
from fungrad.targets import prepare_targets

__all__ = [
    "TARGET_KINDS",
    "Loss",
    "accumulation_dtype",
    "accuracy",
    "get_loss",
    "in_accumulation_dtype",
    "loss_names",
    "prepare_targets",
    "register_loss",
    "zero_one",
]


TARGET_KINDS = ("classes", "binary", "real")
"""The kinds of target a :class:`Loss` takes (its ``target`` field)."""


class _LossFields(NamedTuple):
    name: str
    fn: Callable[[jax.Array, jax.Array], jax.Array]
    grad: Callable[[jax.Array, jax.Array], jax.Array]
    classification: bool
    target: str


class Loss(_LossFields):
    """A per-sample loss, its hand-written gradient with respect to ``y_hat``, and its targets.

    Attributes:
        name: the name shown in errors and histories.
        fn: ``(y_hat (batch, k), y) -> (batch,)`` per-sample losses.
        grad: ``(y_hat, y) -> (batch, k)``, the per-sample ``dl/dy_hat``.
        classification: whether the outputs are class scores (accuracy is then reported).
            Defaults to ``target != "real"``.
        target: the kind of target the loss takes, one of :data:`TARGET_KINDS`:
            ``"classes"`` (integer class labels ``(batch,)`` or probability rows
            ``(batch, k)``), ``"binary"`` (values in ``[0, 1]``) or ``"real"`` (any finite
            values). Defaults to ``"classes"`` when ``classification`` is true, else
            ``"real"``.

    Raises:
        ValueError: for a ``target`` that is not one of :data:`TARGET_KINDS`.
        TypeError: for a ``classification`` that is not a bool.

    Example:
        >>> import jax.numpy as jnp
        >>> hinge = Loss("hinge", lambda z, y: jnp.sum(jnp.maximum(0, 1 - z * (2 * y - 1)), -1),
        ...              lambda z, y: jnp.where(z * (2 * y - 1) < 1, 1 - 2 * y, 0.0),
        ...              target="binary")
        >>> hinge.target, hinge.classification
        ('binary', True)
    """

    __slots__ = ()

    def __new__(
        cls,
        name: str,
        fn: Callable[[jax.Array, jax.Array], jax.Array],
        grad: Callable[[jax.Array, jax.Array], jax.Array],
        classification: bool | None = None,
        target: str | None = None,
    ) -> Loss:
        if classification is not None and not isinstance(classification, (bool, np.bool_)):
            raise TypeError(
                f"classification: expected True or False, got {type(classification).__name__}"
            )
        if target is None:
            target = "classes" if classification else "real"
        one_of("target", target, TARGET_KINDS)
        if classification is None:
            classification = target != "real"
        return super().__new__(cls, name, fn, grad, bool(classification), target)


def accumulation_dtype(dtype) -> np.dtype:
    """The dtype that sums over a batch, losses and optimizer statistics use for ``dtype``.

    ``float32`` for floating dtypes narrower than 32 bits (``bfloat16``, ``float16``): their 8
    or 11 significant bits would round away most of a long sum (in bfloat16, 256 + 1 is 256).
    Any other dtype maps to itself, so float32 and float64 programs are unchanged.

    Example:
        >>> import jax.numpy as jnp
        >>> accumulation_dtype(jnp.bfloat16), accumulation_dtype(jnp.float64)
        (dtype('float32'), dtype('float64'))
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize < 4:
        return jnp.dtype(jnp.float32)
    return dtype


def in_accumulation_dtype(tree):
    """``tree`` with each ``bfloat16``/``float16`` leaf cast to float32; other leaves as they are.

    Leaves already in their :func:`accumulation_dtype` are returned untouched (no cast is
    traced), so a float32 or float64 program is the same program with or without this call.

    Example:
        >>> import jax.numpy as jnp
        >>> in_accumulation_dtype({"w": jnp.ones(2, jnp.bfloat16), "n": jnp.ones(2, int)})["w"].dtype
        dtype('float32')
    """

    def widen(leaf):
        dtype = accumulation_dtype(leaf.dtype)
        return leaf if dtype == leaf.dtype else leaf.astype(dtype)

    return jax.tree.map(widen, tree)


def _l2(y_hat, y):
    y_hat = in_accumulation_dtype(y_hat)
    y = y.astype(y_hat.dtype)
    return jnp.sum((y_hat - y) ** 2, axis=-1)


def _l2_grad(y_hat, y):
    y_hat = in_accumulation_dtype(y_hat)
    y = y.astype(y_hat.dtype)
    return 2 * (y_hat - y)


def _mse(y_hat, y):
    y_hat = in_accumulation_dtype(y_hat)
    y = y.astype(y_hat.dtype)
    return jnp.mean((y_hat - y) ** 2, axis=-1)


def _mse_grad(y_hat, y):
    y_hat = in_accumulation_dtype(y_hat)
    y = y.astype(y_hat.dtype)
    return 2 * (y_hat - y) / y_hat.shape[-1]


def _as_probabilities(y, logits):
    if jnp.issubdtype(y.dtype, jnp.integer):
        return jax.nn.one_hot(y, logits.shape[-1], dtype=logits.dtype)
    return y.astype(logits.dtype)


def _softmax_cross_entropy(logits, y):
    logits = in_accumulation_dtype(logits)
    p = _as_probabilities(y, logits)
    return jnp.sum(p, axis=-1) * logsumexp(logits, axis=-1) - jnp.sum(p * logits, axis=-1)


def _softmax_cross_entropy_grad(logits, y):
    logits = in_accumulation_dtype(logits)
    p = _as_probabilities(y, logits)
    return jnp.sum(p, axis=-1, keepdims=True) * jax.nn.softmax(logits, axis=-1) - p


def _sigmoid_binary_cross_entropy(logits, y):
    logits = in_accumulation_dtype(logits)
    y = y.astype(logits.dtype)
    # softplus(z) - z y = log(1 + e^z) - z y, computed as logaddexp(z, 0) so it is stable for
    # large |z| and smooth at z = 0 (a max(z, 0) form would have a kink there for autodiff).
    per_output = jnp.logaddexp(logits, 0) - logits * y
    return jnp.sum(per_output, axis=-1)


def _sigmoid_binary_cross_entropy_grad(logits, y):
    logits = in_accumulation_dtype(logits)
    return jax.nn.sigmoid(logits) - y.astype(logits.dtype)


_REGISTRY: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("l2", _l2, _l2_grad, target="real"),
        Loss("mse", _mse, _mse_grad, target="real"),
        Loss(
            "softmax_cross_entropy",
            _softmax_cross_entropy,
            _softmax_cross_entropy_grad,
            target="classes",
        ),
        Loss(
            "sigmoid_binary_cross_entropy",
            _sigmoid_binary_cross_entropy,
            _sigmoid_binary_cross_entropy_grad,
            target="binary",
        ),
    )
}
_BUILTIN = frozenset(_REGISTRY)
_METRICS = ("zero_one", "accuracy")


def loss_names() -> tuple[str, ...]:
    """The names :func:`get_loss` accepts."""
    return tuple(_REGISTRY)


def _checked(loss: Loss, argname: str) -> Loss:
    """``loss`` itself, after checking each field."""
    if not isinstance(loss.name, str) or not loss.name:
        raise TypeError(f"{argname}.name: expected a non-empty string, got {loss.name!r}")
    for field in ("fn", "grad"):
        value = getattr(loss, field)
        if not callable(value):
            raise TypeError(
                f"{argname}.{field}: expected a callable (y_hat, y) -> array, "
                f"got {type(value).__name__}"
            )
    one_of(f"{argname}.target", loss.target, TARGET_KINDS)
    return loss


def register_loss(loss: Loss) -> Loss:
    """Register a :class:`Loss` so it can be asked for by its name.

    Its targets are then checked like a built-in loss's with the same ``target`` kind.

    Args:
        loss: the loss; its ``name`` must not be a built-in loss or metric, nor a name
            already registered for another loss.

    Returns:
        ``loss``.

    Raises:
        TypeError: if ``loss`` is not a :class:`Loss`, its name not a string, or ``fn`` or
            ``grad`` not callable.
        ValueError: if the name is taken, or ``target`` is not one of :data:`TARGET_KINDS`.

    Example:
        >>> import jax.numpy as jnp
        >>> l1 = register_loss(Loss("l1_example", lambda y_hat, y: jnp.sum(jnp.abs(y_hat - y), -1),
        ...                         lambda y_hat, y: jnp.sign(y_hat - y), target="real"))
        >>> get_loss("l1_example") is l1
        True
    """
    if not isinstance(loss, Loss):
        raise TypeError(f"loss: expected a fungrad.Loss, got {type(loss).__name__}")
    _checked(loss, "loss")
    if loss.name in _BUILTIN or loss.name in _METRICS:
        raise ValueError(f"loss.name: {loss.name!r} is a built-in name; choose another")
    if _REGISTRY.get(loss.name, loss) is not loss:
        raise ValueError(f"loss.name: a different loss is already registered as {loss.name!r}")
    _REGISTRY[loss.name] = loss
    return loss


def get_loss(loss: str | Loss, *, argname: str = "loss") -> Loss:
    """Resolve a name or a :class:`Loss` to a :class:`Loss`.

    Raises:
        ValueError: for an unknown name, or a metric (``zero_one``, ``accuracy``) asked for as
            a training loss: it has zero gradient almost everywhere.
        TypeError: for anything that is neither a string nor a :class:`Loss`, or a
            :class:`Loss` whose ``fn`` or ``grad`` is not callable.
    """
    if isinstance(loss, Loss):
        return _checked(loss, argname)
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


def zero_one(y_hat: jax.Array, y: jax.Array) -> jax.Array:
    """The 0-1 loss per sample: 1 where the prediction is wrong, 0 where it is right.

    With one output the prediction is ``y_hat > 0`` (logits of a binary classifier) against
    ``y > 0.5``; with several it is ``argmax(y_hat)`` against the label (or ``argmax(y)`` for
    one-hot / probability targets). Not differentiable: a metric, never a training loss. The
    result has ``y_hat``'s :func:`accumulation_dtype` (float32 for bfloat16 outputs).
    """
    y_hat = jnp.atleast_2d(y_hat)
    dtype = accumulation_dtype(y_hat.dtype)  # a mean over a batch of bfloat16 0s and 1s would round
    if y_hat.shape[-1] == 1:
        predicted = y_hat[..., 0] > 0
        truth = jnp.reshape(y, predicted.shape) > 0.5
        return (predicted != truth).astype(dtype)
    labels = y if jnp.issubdtype(jnp.asarray(y).dtype, jnp.integer) else jnp.argmax(y, axis=-1)
    return (jnp.argmax(y_hat, axis=-1) != jnp.reshape(labels, y_hat.shape[:-1])).astype(dtype)


def accuracy(y_hat: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of correctly classified samples: ``1 - mean(zero_one)``."""
    return 1 - jnp.mean(zero_one(y_hat, y))

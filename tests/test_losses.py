"""Losses: values against optax, hand-written ``dl/dy_hat`` against ``jax.grad``, metrics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fungrad
from fungrad import backprop, losses

BATCH, K = 6, 4


def _targets(kind: str, rng: np.random.Generator, batch: int = BATCH, k: int = K):
    if kind == "labels":
        return rng.integers(0, k, size=batch)
    if kind == "probabilities":
        logits = rng.normal(size=(batch, k))
        return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    if kind == "unnormalized":
        return rng.uniform(0.0, 2.0, size=(batch, k))
    if kind == "binary":
        return rng.integers(0, 2, size=(batch, k)).astype(np.float64)
    return rng.normal(size=(batch, k))


# (loss name, target kind, optax reference giving the per-sample loss)
CASES = [
    ("l2", "real", lambda y_hat, y: jnp.sum(2 * optax.l2_loss(y_hat, y), axis=-1)),
    ("mse", "real", lambda y_hat, y: jnp.mean(optax.squared_error(y_hat, y), axis=-1)),
    (
        "softmax_cross_entropy",
        "labels",
        optax.softmax_cross_entropy_with_integer_labels,
    ),
    ("softmax_cross_entropy", "probabilities", optax.softmax_cross_entropy),
    # Targets that do not sum to 1 (e.g. weighted classes): dl/dz = sum(p) softmax(z) - p.
    ("softmax_cross_entropy", "unnormalized", optax.softmax_cross_entropy),
    (
        "sigmoid_binary_cross_entropy",
        "binary",
        lambda y_hat, y: jnp.sum(optax.sigmoid_binary_cross_entropy(y_hat, y), axis=-1),
    ),
]
IDS = [f"{name}-{kind}" for name, kind, _ in CASES]


def test_builtin_names():
    assert set(losses.loss_names()) == {
        "l2",
        "mse",
        "softmax_cross_entropy",
        "sigmoid_binary_cross_entropy",
    }


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kind", "reference"), CASES, ids=IDS)
def test_value_and_gradient_match_optax(name, kind, reference):
    loss = losses.get_loss(name)
    rng = np.random.default_rng(0)
    y_hat, y = 3 * rng.normal(size=(BATCH, K)), _targets(kind, rng)

    @jax.jit
    def evaluate(y_hat, y):
        # Samples are independent, so the gradient of the summed loss is each sample's own.
        want_grad = jax.grad(lambda y_hat: jnp.sum(reference(y_hat, y)))(y_hat)
        return loss.fn(y_hat, y), reference(y_hat, y), loss.grad(y_hat, y), want_grad

    value, want_value, grad, want_grad = evaluate(y_hat, y)
    assert value.shape == (BATCH,)
    assert grad.shape == (BATCH, K)
    np.testing.assert_allclose(value, want_value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-14)

    value32, want32, grad32, _ = evaluate(y_hat.astype(np.float32), y)
    assert value32.dtype == grad32.dtype == jnp.float32
    np.testing.assert_allclose(value32, want32, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kind", "reference"), CASES, ids=IDS)
def test_loss_vjp_inner_product_identity(name, kind, reference):
    """``<t, J^T c> == <J t, c>`` for ``L(y_hat) = sum_i weights_i l_i / sum_i weights_i``."""
    del reference
    loss = losses.get_loss(name)
    rng = np.random.default_rng(1)
    y_hat, y = rng.normal(size=(BATCH, K)), _targets(kind, rng)
    weights = rng.uniform(0.1, 2.0, size=BATCH)
    t, c = rng.normal(size=(BATCH, K)), rng.normal()

    def objective(y_hat):
        return jnp.sum(weights * loss.fn(y_hat, y)) / jnp.sum(weights)

    @jax.jit
    def evaluate(y_hat, t):
        jt = jax.jvp(objective, (y_hat,), (t,))[1]
        return jt, backprop.loss_vjp(loss, y_hat, y, weights)

    jt, cotangent = evaluate(y_hat, t)
    assert cotangent.shape == (BATCH, K)
    np.testing.assert_allclose(jnp.vdot(t, c * cotangent), jt * c, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kind", "reference"), CASES, ids=IDS)
def test_stable_for_huge_logits(name, kind, reference):
    del reference
    loss = losses.get_loss(name)
    y_hat = 1e4 * np.array([[1.0, -1.0, 0.0, 1.0], [-1.0, 1.0, 1.0, -1.0]])
    y = _targets(kind, np.random.default_rng(2), batch=2)
    value, grad = jax.jit(lambda y_hat, y: (loss.fn(y_hat, y), loss.grad(y_hat, y)))(y_hat, y)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))


def test_huge_logits_have_the_right_value():
    ce = losses.get_loss("softmax_cross_entropy")
    bce = losses.get_loss("sigmoid_binary_cross_entropy")
    logits, labels = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]]), np.array([0, 2])
    bce_logits, bce_targets = np.array([[1e4], [-1e4], [1e4]]), np.array([[1.0], [0.0], [0.0]])

    @jax.jit
    def evaluate():
        return ce.fn(logits, labels), ce.grad(logits, labels), bce.fn(bce_logits, bce_targets)

    ce_value, ce_grad, bce_value = evaluate()
    np.testing.assert_allclose(ce_value, [0.0, 2e4], atol=1e-9)
    np.testing.assert_allclose(ce_grad, [[0, 0, 0], [1, 0, -1]], atol=1e-9)
    np.testing.assert_allclose(bce_value, [0, 0, 1e4])


def test_probability_targets_equal_one_hot_labels():
    ce = losses.get_loss("softmax_cross_entropy")
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(BATCH, K)), rng.integers(0, K, size=BATCH)
    one_hot = np.eye(K)[labels]
    evaluate = jax.jit(lambda y: (ce.fn(logits, y), ce.grad(logits, y)))
    from_labels, from_one_hot = evaluate(labels), evaluate(one_hot)
    np.testing.assert_allclose(from_labels[0], from_one_hot[0], rtol=1e-14)
    np.testing.assert_allclose(from_labels[1], from_one_hot[1], rtol=1e-14)


# --------------------------------------------------------------------------- metrics


def test_zero_one_and_accuracy_multiclass():
    y_hat = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [0.0, 0.5, -1.0]])
    labels = np.array([0, 2, 2, 0])
    np.testing.assert_array_equal(fungrad.zero_one(y_hat, labels), [0.0, 1.0, 0.0, 1.0])
    assert float(fungrad.accuracy(y_hat, labels)) == 0.5
    np.testing.assert_array_equal(fungrad.zero_one(y_hat, np.eye(3)[labels]), [0, 1, 0, 1])
    assert float(fungrad.accuracy(y_hat, np.array([0, 1, 2, 1]))) == 1.0


def test_zero_one_and_accuracy_one_output_binary():
    y_hat = np.array([[1.5], [-0.2], [0.3], [-3.0]])
    y = np.array([1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(fungrad.zero_one(y_hat, y), [0.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(fungrad.zero_one(y_hat, y[:, None]), [0.0, 1.0, 1.0, 0.0])
    assert float(fungrad.accuracy(y_hat, y)) == 0.5
    assert float(fungrad.accuracy(-y_hat, y)) == 0.5
    assert float(fungrad.accuracy(np.array([[2.0], [1.0], [-1.0], [-2.0]]), y)) == 1.0


# --------------------------------------------------------------------------- bad input


def _model(k: int = 3):
    rng = np.random.default_rng(4)
    params = [{"w": rng.normal(size=(2, k)), "b": np.zeros(k)}]
    return params, rng.normal(size=(5, 2))


@pytest.mark.parametrize("loss", ["l2", "mse", "sigmoid_binary_cross_entropy"])
def test_targets_of_the_wrong_shape_are_rejected(loss):
    params, x = _model()
    with pytest.raises(ValueError, match=r"y: expected shape \(5, 3\) for loss"):
        fungrad.value_and_grad(params, x, np.zeros((5, 2)), loss=loss)
    with pytest.raises(ValueError, match=r"y: expected shape \(5, 3\).*got \(5,\)"):
        fungrad.value_and_grad(params, x, np.zeros(5), loss=loss)


@pytest.mark.slow
def test_one_output_accepts_flat_targets():
    params, x = _model(k=1)
    y = np.array([0.0, 1, 1, 0, 1])
    for loss in ("l2", "sigmoid_binary_cross_entropy"):
        value_and_grad = jax.jit(functools.partial(fungrad.value_and_grad, loss=loss))
        flat, column = value_and_grad(params, x, y), value_and_grad(params, x, y[:, None])
        np.testing.assert_allclose(flat[0], column[0], rtol=1e-14)
        np.testing.assert_allclose(flat[1][0]["w"], column[1][0]["w"], rtol=1e-14)


def test_softmax_targets_of_the_wrong_shape_are_rejected():
    params, x = _model()
    with pytest.raises(ValueError, match=r"y: integer class labels .* shape \(5,\), got \(4,\)"):
        fungrad.value_and_grad(params, x, np.zeros(4, int), loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"y: expected shape integer labels \(5,\) or prob"):
        fungrad.value_and_grad(params, x, np.zeros((5, 2)), loss="softmax_cross_entropy")


@pytest.mark.parametrize("bad_label", [3, 7, -1])
def test_labels_out_of_range_are_rejected(bad_label):
    params, x = _model()
    labels = np.array([0, 1, 2, bad_label, 0])
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):
        fungrad.value_and_grad(params, x, labels, loss="softmax_cross_entropy")


def test_unknown_loss_name_lists_valid_names():
    params, x = _model()
    with pytest.raises(ValueError, match="loss: unknown loss 'hinge'") as info:
        fungrad.value_and_grad(params, x, np.zeros((5, 3)), loss="hinge")
    for name in losses.loss_names():
        assert name in str(info.value)


@pytest.mark.parametrize("metric", ["zero_one", "accuracy"])
def test_metrics_are_rejected_as_training_losses(metric):
    params, x = _model()
    with pytest.raises(ValueError, match=f"loss: '{metric}' is a metric, not a differentiable"):
        fungrad.value_and_grad(params, x, np.zeros(5, int), loss=metric)


def test_loss_of_wrong_type_is_rejected():
    with pytest.raises(TypeError, match="loss: expected a loss name or fungrad.Loss, got int"):
        losses.get_loss(3)


@pytest.mark.slow
def test_labels_closed_over_by_a_jitted_function():
    """Concrete labels captured by a jitted closure are used, and their range is checked."""
    params, x = _model()

    def value_with(labels):
        return jax.jit(
            lambda p: fungrad.value_and_grad(p, x, labels, loss="softmax_cross_entropy")[0]
        )(params)

    labels = jnp.array([0, 1, 2, 0, 1])
    want = fungrad.value_and_grad(params, x, labels, loss="softmax_cross_entropy")[0]
    np.testing.assert_allclose(value_with(labels), want, rtol=1e-14)
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 3\)"):
        value_with(jnp.array([0, 1, 3, 0, 1]))

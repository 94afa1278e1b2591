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
    # Built-ins come first; a docstring example may have registered more after them.
    assert losses.loss_names()[:4] == (
        "l2",
        "mse",
        "softmax_cross_entropy",
        "sigmoid_binary_cross_entropy",
    )


def test_builtin_losses_declare_their_targets():
    targets = {name: losses.get_loss(name).target for name in losses.loss_names()[:4]}
    assert targets == {
        "l2": "real",
        "mse": "real",
        "softmax_cross_entropy": "classes",
        "sigmoid_binary_cross_entropy": "binary",
    }
    assert [losses.get_loss(name).classification for name in targets] == [
        False,
        False,
        True,
        True,
    ]


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


# --------------------------------------------------------------------------- target kinds


def _square(y_hat, y):
    return jnp.sum((y_hat - y) ** 2, axis=-1)


def _square_grad(y_hat, y):
    return 2 * (y_hat - y)


@pytest.mark.parametrize(
    ("kwargs", "target", "classification"),
    [
        ({}, "real", False),
        ({"classification": False}, "real", False),
        ({"classification": True}, "classes", True),
        ({"target": "binary"}, "binary", True),
        ({"target": "classes"}, "classes", True),
        ({"target": "real"}, "real", False),
        ({"target": "binary", "classification": False}, "binary", False),
    ],
)
def test_loss_target_and_classification_default_to_each_other(kwargs, target, classification):
    loss = fungrad.Loss("square", _square, _square_grad, **kwargs)
    assert (loss.target, loss.classification) == (target, classification)


def test_a_loss_with_an_unknown_target_kind_is_refused():
    with pytest.raises(ValueError, match=r"^target: expected one of 'classes', 'binary', 'real'"):
        fungrad.Loss("square", _square, _square_grad, target="probabilities")
    with pytest.raises(TypeError, match=r"^classification: expected True or False"):
        fungrad.Loss("square", _square, _square_grad, "yes")


@pytest.mark.parametrize(
    ("y", "row"),
    [
        (np.array([[0.0, 1.0, 0.5], [0.2, 1.5, 0.0], [0, 0, 0], [-0.1, 0, 0], [1, 1, 1]]), 1),
        (np.array([[0.0, 1.0, 0.5], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, np.nan, 1]]), 4),
    ],
    ids=["above-and-below", "nan"],
)
def test_binary_targets_outside_the_unit_interval_are_rejected(y, row):
    params, x = _model()
    with pytest.raises(ValueError) as info:
        fungrad.value_and_grad(params, x, y, loss="sigmoid_binary_cross_entropy")
    message = str(info.value)
    assert message.startswith("y: expected values in [0, 1]"), message
    outside = int(np.sum(~((y >= 0) & (y <= 1))))
    assert f"got {outside} outside it, the first in row {row}:" in message


def test_binary_targets_are_checked_by_fit_before_training():
    params, x = _model(k=1)
    y = np.array([0.0, 1.0, 1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match=r"^y: expected values in \[0, 1\].*row 3"):
        fungrad.fit(
            params,
            x,
            y,
            loss="sigmoid_binary_cross_entropy",
            optimizer=fungrad.optim.sgd(0.1),
            epochs=1,
            key=jax.random.key(0),
        )


@pytest.mark.parametrize(
    ("bad_row", "expected_sum"),
    [
        ([0.5, 0.6, 0.0], "1.1"),
        ([0.5, 0.3, 0.0], "0.8"),
        ([1.5, -0.5, 0.0], "1"),
        ([0.5, np.nan, 0.5], "nan"),
    ],
    ids=["above-one", "below-one", "negative", "nan"],
)
def test_probability_rows_must_be_non_negative_and_sum_to_one(bad_row, expected_sum):
    params, x = _model()
    y = np.tile([0.2, 0.3, 0.5], (5, 1))
    y[2] = bad_row
    with pytest.raises(ValueError) as info:
        fungrad.value_and_grad(params, x, y, loss="softmax_cross_entropy")
    message = str(info.value)
    assert message.startswith("y: expected probability rows"), message
    assert "the first row 2:" in message
    assert message.endswith(f"sums to {expected_sum}")


@pytest.mark.parametrize(
    ("dtype", "within", "beyond"),
    [(np.float32, 5e-4, 5e-3), (np.float64, 5e-7, 5e-6)],
)
@pytest.mark.slow
def test_probability_rows_sum_to_one_within_the_dtypes_tolerance(dtype, within, beyond):
    params, x = _model()
    y = np.tile(np.array([0.25, 0.25, 0.5], dtype), (5, 1))
    y[:, 2] += dtype(within)
    fungrad.value_and_grad(params, x, y, loss="softmax_cross_entropy")
    y[:, 2] += dtype(beyond)
    with pytest.raises(ValueError, match=r"^y: expected probability rows .* row 0"):
        fungrad.value_and_grad(params, x, y, loss="softmax_cross_entropy")


@pytest.mark.slow
def test_valid_targets_of_every_kind_pass():
    params, x = _model()
    rng = np.random.default_rng(5)
    probabilities = rng.dirichlet(np.ones(3), size=5)
    cases = [
        ("l2", 100 * rng.normal(size=(5, 3))),
        ("mse", rng.normal(size=(5, 3))),
        ("sigmoid_binary_cross_entropy", rng.uniform(0, 1, size=(5, 3))),
        ("sigmoid_binary_cross_entropy", rng.integers(0, 2, size=(5, 3)).astype(bool)),
        ("softmax_cross_entropy", probabilities),
        ("softmax_cross_entropy", np.eye(3)[[0, 2, 1, 1, 0]]),
        ("softmax_cross_entropy", np.array([0, 2, 1, 1, 0])),
    ]
    for name, y in cases:
        value, _ = fungrad.value_and_grad(params, x, y, loss=name)
        assert np.isfinite(value), name


def test_targets_traced_under_jit_are_not_read():
    params, x = _model()
    y = np.tile([0.5, 0.6, 0.0], (5, 1))  # rows sum to 1.1: refused when concrete
    value = jax.jit(
        lambda y: fungrad.value_and_grad(params, x, y, loss="softmax_cross_entropy")[0]
    )(y)
    assert np.isfinite(value)


# --------------------------------------------------------------------------- register_loss


@pytest.fixture
def registry(monkeypatch):
    """Registrations made by a test are undone after it."""
    monkeypatch.setattr(losses, "_REGISTRY", dict(losses._REGISTRY))


def test_a_registered_binary_loss_has_its_targets_checked_like_the_builtin(registry):
    loss = losses.register_loss(
        fungrad.Loss("binary_square", _square, _square_grad, target="binary")
    )
    assert fungrad.register_loss is losses.register_loss
    assert losses.get_loss(loss.name) is loss
    params, x = _model()
    y = np.full((5, 3), 0.5)
    fungrad.value_and_grad(params, x, y, loss=loss.name)
    y[3, 1] = 1.5
    for name in (loss.name, "sigmoid_binary_cross_entropy"):
        with pytest.raises(ValueError, match=r"^y: expected values in \[0, 1\].*row 3"):
            fungrad.value_and_grad(params, x, y, loss=name)


def test_a_registered_classes_loss_takes_labels_and_probability_rows(registry):
    ce = losses.get_loss("softmax_cross_entropy")
    loss = losses.register_loss(fungrad.Loss("ce", ce.fn, ce.grad, target="classes"))
    params, x = _model()
    labels = np.array([0, 2, 1, 1, 0])
    for y in (labels, np.eye(3)[labels]):
        np.testing.assert_allclose(
            fungrad.value_and_grad(params, x, y, loss=loss.name)[0],
            fungrad.value_and_grad(params, x, y, loss=ce)[0],
        )
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 3\)"):
        fungrad.value_and_grad(params, x, labels + 1, loss=loss.name)
    with pytest.raises(ValueError, match=r"probability rows"):
        fungrad.value_and_grad(params, x, 2 * np.eye(3)[labels], loss=loss.name)


def test_registering_twice(registry):
    loss = fungrad.Loss("twice", _square, _square_grad)
    assert losses.register_loss(loss) is loss
    assert losses.register_loss(loss) is loss  # the same loss again: no change
    other = fungrad.Loss(loss.name, _square, _square_grad, target="binary")
    with pytest.raises(ValueError, match=r"^loss.name: a different loss is already registered"):
        losses.register_loss(other)
    assert losses.get_loss(loss.name) is loss


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (lambda: "l2", TypeError, r"^loss: expected a fungrad.Loss, got str"),
        (lambda: fungrad.Loss("l2", _square, _square_grad), ValueError, r"^loss.name: 'l2'"),
        (lambda: fungrad.Loss("accuracy", _square, _square_grad), ValueError, r"^loss.name"),
        (lambda: fungrad.Loss("", _square, _square_grad), TypeError, r"^loss.name: expected"),
        (lambda: fungrad.Loss(3, _square, _square_grad), TypeError, r"^loss.name: expected"),
        (lambda: fungrad.Loss("x", 3, _square_grad), TypeError, r"^loss.fn: expected a call"),
        (lambda: fungrad.Loss("x", _square, None), TypeError, r"^loss.grad: expected a call"),
        (
            lambda: fungrad.Loss("x", _square, _square_grad)._replace(target="labels"),
            ValueError,
            r"^loss.target: expected one of 'classes', 'binary', 'real', got 'labels'",
        ),
    ],
    ids=["not-a-loss", "builtin", "metric", "empty-name", "int-name", "fn", "grad", "target"],
)
def test_register_loss_checks_its_argument(registry, make, error, pattern):
    before = losses.loss_names()
    with pytest.raises(error, match=pattern):
        losses.register_loss(make())
    assert losses.loss_names() == before


def test_get_loss_checks_a_loss_it_is_given():
    with pytest.raises(TypeError, match=r"^loss.fn: expected a callable"):
        losses.get_loss(fungrad.Loss("x", "square", _square_grad))

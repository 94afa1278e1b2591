"""The training engine: ``fit`` against hand-written loops, the lesson's examples, real data.

Everything here runs through ``fungrad.fit``, i.e. jitted epochs, in float64 unless a test
says otherwise.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fungrad
from fungrad import mlp, optim, stopping

# --------------------------------------------------------------------------- helpers


def _regression_data(n=23, n_in=3, n_out=2, seed=0):
    key_x, key_noise = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(key_x, (n, n_in), jnp.float64)
    y = jnp.stack([jnp.sin(x[:, 0]) + x[:, 1], x[:, 1] * x[:, 2]][:n_out], axis=1)
    return x, y + 0.05 * jax.random.normal(key_noise, y.shape, jnp.float64)


def _l2_objective(params, x, y, activation):
    """The mean over the batch of ``sum_j (F(x)_j - y_j)^2``, written out independently."""
    a = x
    for i, layer in enumerate(params):
        z = a @ layer["w"] + layer["b"]
        a = z if i == len(params) - 1 else getattr(jnp, activation)(z)
    return jnp.mean(jnp.sum((a - y) ** 2, axis=-1))


def _manual_sgd(params, x, y, *, optimizer, epochs, batch_size, key, activation):
    """fit's documented schedule as a plain loop: shuffle with ``fold_in(key, epoch)``, take the
    batches in order (the last one partial), step on each batch's mean loss."""
    value_and_grad = jax.jit(
        jax.value_and_grad(lambda p, xb, yb: _l2_objective(p, xb, yb, activation))
    )
    update = jax.jit(optimizer.update)
    opt_state = optimizer.init(params)
    n = x.shape[0]
    losses, grad_norms = [], []
    for epoch in range(epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
        total, norms = 0.0, []
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            value, grads = value_and_grad(params, x[batch], y[batch])
            updates, opt_state = update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            total += float(value) * len(batch)
            norms.append(float(optax.tree.norm(grads)))
        losses.append(total / n)
        grad_norms.append(norms[-1])  # fit records the norm of the epoch's last gradient
    return params, np.array(losses), np.array(grad_norms)


def _assert_trees_close(actual, expected, rtol, atol=0.0):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- the lesson


def test_gd_on_the_parabola_reaches_its_minimum():
    """L(w) = w^2 + 1: GD goes to w* = 0, where L = 1."""
    x = jnp.zeros((4, 1), jnp.float64)
    result = fungrad.fit(
        {"w": jnp.asarray(3.0, jnp.float64)},
        x,
        x,
        loss="l2",
        optimizer=optim.gd(0.1),
        epochs=150,
        key=jax.random.key(0),
        gradients=lambda p, x, y: (jnp.sum(p["w"] ** 2) + 1, {"w": 2 * p["w"]}),
    )
    assert result.epochs_run == 150
    assert abs(float(result.params["w"])) < 1e-12
    assert result.history["loss"][-1] == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.diff(result.history["loss"]) <= 0)


def _rolling_ball(params, x, y):
    w = params["w"]
    return w**4 + 2 * w**3, {"w": 4 * w**3 + 6 * w**2}


@pytest.mark.slow
def test_momentum_rolls_past_the_flat_point_where_gd_stalls():
    """L(w) = w^4 + 2 w^3 = w^3 (w + 2): flat at w = 0 (L' = L'' = 0), minimum at w = -3/2.

    From w = 1 plain GD creeps towards the flat point and stays on its right; momentum (the
    rolling ball) carries enough speed through it to reach the minimum.
    """
    x = jnp.zeros((4, 1), jnp.float64)
    settings = dict(loss="l2", epochs=400, key=jax.random.key(0), gradients=_rolling_ball)
    start = {"w": jnp.asarray(1.0, jnp.float64)}
    gd = fungrad.fit(start, x, x, optimizer=optim.gd(0.02), **settings)
    ball = fungrad.fit(start, x, x, optimizer=optim.momentum(0.02, 0.9), **settings)
    w_gd, w_ball = float(gd.params["w"]), float(ball.params["w"])
    assert 0 < w_gd < 0.05
    assert np.all(np.diff(gd.history["loss"]) < 0)
    assert w_ball == pytest.approx(-1.5, abs=1e-6)
    assert ball.history["loss"][-1] == pytest.approx(-27 / 16, abs=1e-10)


# --------------------------------------------------------------------------- equal to by hand


@pytest.mark.slow
def test_full_batch_gd_equals_a_hand_written_loop():
    x, y = _regression_data(n=17)
    params = mlp.init(jax.random.key(1), [3, 5, 2], dtype=jnp.float64, activation="tanh")
    lr, epochs = 0.05, 6
    result = fungrad.fit(
        params,
        x,
        y,
        loss="l2",
        optimizer=optim.gd(lr),
        epochs=epochs,
        key=jax.random.key(2),
        activation="tanh",
    )
    value_and_grad = jax.jit(jax.value_and_grad(lambda p: _l2_objective(p, x, y, "tanh")))
    expected, losses, grad_norms = params, [], []
    for _ in range(epochs):
        value, grads = value_and_grad(expected)
        expected = jax.tree.map(lambda w, g: w - lr * g, expected, grads)
        losses.append(float(value))
        grad_norms.append(float(optax.tree.norm(grads)))
    _assert_trees_close(result.params, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(result.history["loss"], losses, rtol=1e-12)
    np.testing.assert_allclose(result.history["grad_norm"], grad_norms, rtol=1e-12)
    assert set(result.history) == {"loss", "grad_norm"}
    assert int(result.state.step) == epochs


MINIBATCH_OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.05),
    "momentum": lambda: optim.momentum(0.02, 0.9),
    "adam": lambda: optim.adam(0.01),
}


@pytest.fixture(scope="module", params=list(MINIBATCH_OPTIMIZERS))
def minibatch_runs(request):
    """fit with backprop, fit with autodiff, and the manual loop, on 23 samples in batches of 5
    (four full batches and a partial one of 3)."""
    x, y = _regression_data(n=23)
    params = mlp.init(jax.random.key(3), [3, 6, 2], dtype=jnp.float64, activation="tanh")
    settings = dict(epochs=3, batch_size=5, key=jax.random.key(4), activation="tanh")
    optimizer = MINIBATCH_OPTIMIZERS[request.param]()
    runs = {
        source: fungrad.fit(
            params, x, y, loss="l2", optimizer=optimizer, gradients=source, **settings
        )
        for source in ("backprop", "autodiff")
    }
    runs["manual"] = _manual_sgd(params, x, y, optimizer=optimizer, **settings)
    return runs


@pytest.mark.slow
def test_backprop_and_autodiff_train_to_the_same_params(minibatch_runs):
    backprop, autodiff = minibatch_runs["backprop"], minibatch_runs["autodiff"]
    _assert_trees_close(backprop.params, autodiff.params, rtol=1e-9, atol=1e-12)
    for name in ("loss", "grad_norm"):
        np.testing.assert_allclose(backprop.history[name], autodiff.history[name], rtol=1e-9)


@pytest.mark.slow
def test_minibatch_fit_equals_the_manual_loop_with_the_same_shuffles(minibatch_runs):
    params, losses, grad_norms = minibatch_runs["manual"]
    result = minibatch_runs["backprop"]
    _assert_trees_close(result.params, params, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.history["loss"], losses, rtol=1e-9)
    np.testing.assert_allclose(result.history["grad_norm"], grad_norms, rtol=1e-9)
    assert int(result.state.step) == 3 * math.ceil(23 / 5)


def _linear_reveal(params, x, y, weights):
    """Objective ``sum_i weights_i <w, x_i> / sum_i weights_i``: its gradient is the weighted
    mean of the inputs of the batch, so with one-hot inputs it shows which samples the step saw,
    and with what weight."""
    total = jnp.sum(weights)
    return jnp.sum(weights * (x @ params["w"])) / total, {"w": x.T @ weights / total}


@pytest.mark.slow
def test_every_sample_is_visited_exactly_once_per_epoch_with_a_partial_batch():
    n, batch_size, epochs = 10, 4, 2
    x = jnp.eye(n, dtype=jnp.float64)
    key = jax.random.key(7)
    result = fungrad.fit(
        {"w": jnp.zeros((n,), jnp.float64)},
        x,
        jnp.zeros((n,), jnp.float64),
        loss="l2",
        optimizer=optim.sgd(1.0),
        epochs=epochs,
        key=key,
        batch_size=batch_size,
        gradients=_linear_reveal,
    )
    # SGD with lr 1 moves w_i by -1/|batch| for each batch that holds sample i: -1/4 in a full
    # batch, -1/2 in the last batch of 2. A padded sample leaking in would show up as extra.
    expected = np.zeros(n)
    for epoch in range(epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
        expected[order[:8]] -= 1 / 4
        expected[order[8:]] -= 1 / 2
    np.testing.assert_array_equal(np.asarray(result.params["w"]), expected)
    assert int(result.state.step) == epochs * 3
    # A different key shuffles differently: the test does see the permutation.
    other = np.asarray(jax.random.permutation(jax.random.fold_in(jax.random.key(8), 0), n))
    assert set(other[8:]) != set(
        np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), n))[8:]
    )


def test_a_callable_without_weights_and_a_partial_batch_is_a_value_error():
    x = jnp.ones((10, 2), jnp.float64)

    def no_weights(params, x, y):
        return jnp.sum(params["w"] ** 2), {"w": 2 * params["w"]}

    with pytest.raises(ValueError, match=r"batch_size.*weights"):
        fungrad.fit(
            {"w": jnp.ones((2,), jnp.float64)},
            x,
            x,
            loss="l2",
            optimizer=optim.sgd(0.1),
            epochs=1,
            key=jax.random.key(0),
            batch_size=4,
            gradients=no_weights,
        )


@pytest.mark.slow
def test_a_callable_that_requires_weights_works_with_validation():
    """BUG (reported): the validation metrics call the gradients callable without ``weights``.

    fit's docstring lets the callable accept ``weights=``; one that declares it without a
    default trains fine but crashes as soon as ``validation`` is given.
    """
    x = jnp.eye(6, dtype=jnp.float64)
    result = fungrad.fit(
        {"w": jnp.zeros((6,), jnp.float64)},
        x,
        jnp.zeros((6,), jnp.float64),
        loss="l2",
        optimizer=optim.sgd(1.0),
        epochs=1,
        key=jax.random.key(0),
        batch_size=4,
        gradients=_linear_reveal,
        validation=(x, jnp.zeros((6,), jnp.float64)),
    )
    assert result.history["val_loss"][0] == pytest.approx(-1 / 6 * (4 / 4 + 2 / 2), rel=1e-12)


# --------------------------------------------------------------------------- compiled once


def _weighted_quadratic(params, x, y, weights):
    residual = x @ params["w"] - y
    total = jnp.sum(weights)
    return (
        0.5 * jnp.sum(weights * residual**2) / total,
        {"w": x.T @ (weights * residual) / total},
    )


def _fit_quadratic(epochs, x, optimizer, callback=None):
    return fungrad.fit(
        {"w": jnp.zeros((3,), jnp.float64)},
        x,
        x[:, 0] - 2 * x[:, 2],
        loss="l2",
        optimizer=optimizer,
        epochs=epochs,
        key=jax.random.key(0),
        batch_size=4,
        gradients=_weighted_quadratic,
        callback=callback,
    )


@pytest.mark.slow
def test_epochs_do_not_recompile(count_compilations):
    x = jax.random.normal(jax.random.key(1), (10, 3), jnp.float64)
    optimizer = optim.momentum(0.1, 0.5)
    _fit_quadratic(2, x, optimizer)
    _fit_quadratic(6, x, optimizer)
    with count_compilations() as two:
        _fit_quadratic(2, x, optimizer)
    per_epoch = []
    with count_compilations() as six:
        result = _fit_quadratic(6, x, optimizer, lambda epoch, m: per_epoch.append(len(six)))
    assert result.epochs_run == 6
    assert len(six) == len(two)
    # Nothing compiles after the first epoch.
    assert per_epoch == [per_epoch[0]] * 6


@pytest.mark.slow
def test_new_data_values_do_not_recompile(count_compilations):
    """BUG (reported): each fit call wraps its epoch in a fresh ``jax.jit``, so a second fit
    with the same settings and data of the same shape compiles the epoch again.

    DESIGN.md: "changing the data values or the learning rate must not recompile".
    """
    x = jax.random.normal(jax.random.key(1), (10, 3), jnp.float64)
    optimizer = optim.sgd(0.1)
    _fit_quadratic(3, x, optimizer)
    other_x = jax.random.normal(jax.random.key(2), (10, 3), jnp.float64)
    with count_compilations() as compiled:
        _fit_quadratic(3, other_x, optimizer)
    assert compiled == []


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def digits_run():
    """sklearn's 8x8 digits: a seeded 1350/447 split, features standardized on the train part,
    an MLP 64-64-10 trained with Adam in batches of 64 (1350 = 21 * 64 + 6)."""
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    train, test = order[:1350], order[1350:]
    mean, std = digits.data[train].mean(0), digits.data[train].std(0) + 1e-8
    x = jnp.asarray((digits.data - mean) / std, jnp.float64)
    y = jnp.asarray(digits.target, jnp.int32)
    params = mlp.init(jax.random.key(0), [64, 64, 10], dtype=jnp.float64)
    calls = []
    result = fungrad.fit(
        params,
        x[train],
        y[train],
        loss="softmax_cross_entropy",
        optimizer=optim.adam(5e-3),
        epochs=8,
        batch_size=64,
        key=jax.random.key(1),
        validation=(x[test], y[test]),
        callback=lambda epoch, metrics: calls.append((epoch, metrics)),
    )
    return result, (x[test], y[test]), calls


@pytest.mark.slow
def test_digits_reach_95_percent_test_accuracy(digits_run):
    result, (x_test, y_test), _ = digits_run
    test = fungrad.evaluate(result.params, x_test, y_test, loss="softmax_cross_entropy")
    assert test["accuracy"] >= 0.95
    assert test["accuracy"] == pytest.approx(result.history["val_accuracy"][-1], abs=1e-12)
    assert test["loss"] == pytest.approx(result.history["val_loss"][-1], rel=1e-10)
    assert result.history["accuracy"][-1] >= 0.95


@pytest.mark.slow
def test_fit_result_fields(digits_run):
    result, _, _ = digits_run
    assert isinstance(result, fungrad.FitResult)
    assert result.epochs_run == 8
    assert result.stop_reason.startswith("epochs")
    assert set(result.history) == {"loss", "grad_norm", "accuracy", "val_loss", "val_accuracy"}
    for name, values in result.history.items():
        assert isinstance(values, np.ndarray), name
        assert values.shape == (result.epochs_run,), name
        assert np.all(np.isfinite(values)), name
    assert np.all((result.history["accuracy"] >= 0) & (result.history["accuracy"] <= 1))
    assert isinstance(result.state, fungrad.TrainState)
    assert int(result.state.step) == result.epochs_run * math.ceil(1350 / 64)
    _assert_trees_close(result.state.params, result.params, rtol=0)
    assert result.history["loss"][-1] < result.history["loss"][0]


@pytest.mark.slow
def test_callback_gets_each_epoch_in_order_with_float_metrics(digits_run):
    result, _, calls = digits_run
    assert [epoch for epoch, _ in calls] == list(range(result.epochs_run))
    for epoch, metrics in calls:
        assert set(metrics) == set(result.history)
        for name, value in metrics.items():
            assert type(value) is float
            assert value == result.history[name][epoch]


# --------------------------------------------------------------------------- divergence


def _diverging(epochs, **kwargs):
    x, y = _regression_data(n=32, n_out=1, seed=5)
    params = mlp.init(jax.random.key(1), [3, 8, 1], dtype=jnp.float64)
    return fungrad.fit(
        params,
        x,
        y,
        loss="l2",
        optimizer=optim.gd(1.0),
        epochs=epochs,
        key=jax.random.key(2),
        **kwargs,
    )


@pytest.mark.slow
def test_divergence_stops_and_keeps_the_last_finite_params():
    result = _diverging(50)
    assert result.stop_reason.startswith("diverged")
    assert 3 <= result.epochs_run < 50
    loss = result.history["loss"]
    assert len(loss) == result.epochs_run
    assert not np.isfinite(loss[-1])
    assert np.all(np.isfinite(loss[:-1]))
    for leaf in jax.tree.leaves(result.params):
        assert np.all(np.isfinite(np.asarray(leaf)))
    before = _diverging(result.epochs_run - 1)
    assert before.stop_reason.startswith("epochs")
    _assert_trees_close(result.params, before.params, rtol=1e-12)
    assert int(result.state.step) == int(before.state.step) == result.epochs_run - 1


@pytest.mark.slow
def test_divergence_can_raise():
    with pytest.raises(FloatingPointError, match="diverged"):
        _diverging(50, on_divergence="raise", batch_size=8)


# --------------------------------------------------------------------------- bad input


def _bad_fit(**overrides):
    x, y = _regression_data(n=12, n_out=1)
    kwargs = dict(
        params=mlp.init(jax.random.key(0), [3, 4, 1], dtype=jnp.float64),
        x=x,
        y=y,
        loss="l2",
        optimizer=optim.sgd(0.1),
        epochs=2,
        key=jax.random.key(1),
    )
    kwargs.update(overrides)
    return fungrad.fit(**kwargs)


def _classes(n=12):
    return jnp.arange(n) % 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        ({"x": jnp.ones((12, 4))}, ValueError, r"^x:"),
        ({"x": jnp.ones((12,))}, ValueError, r"^x:"),
        ({"x": jnp.ones((0, 3)), "y": jnp.ones((0, 1))}, ValueError, r"^x:"),
        ({"x": jnp.ones((12, 3)).at[4, 1].set(jnp.nan)}, ValueError, r"^x:.*NaN"),
        ({"x": jnp.ones((12, 3)).at[0, 0].set(jnp.inf)}, ValueError, r"^x:"),
        ({"batch_size": 0}, ValueError, r"^batch_size:"),
        ({"batch_size": 13}, ValueError, r"^batch_size:"),
        ({"batch_size": 4.0}, ValueError, r"^batch_size:"),
        ({"batch_size": True}, ValueError, r"^batch_size:"),
        ({"epochs": 0}, ValueError, r"^epochs:"),
        ({"epochs": -3}, ValueError, r"^epochs:"),
        ({"epochs": 2.0}, ValueError, r"^epochs:"),
        ({"gradients": "numeric"}, ValueError, r"^gradients:.*backprop.*autodiff"),
        ({"optimizer": "sgd"}, TypeError, r"^optimizer:"),
        ({"optimizer": optim.sgd}, TypeError, r"^optimizer:"),
        ({"loss": "hinge"}, ValueError, r"^loss:.*l2"),
        ({"activation": "swish_x"}, ValueError, r"activation"),
        ({"on_divergence": "ignore"}, ValueError, r"^on_divergence:"),
        ({"validation": jnp.ones((5, 3))}, TypeError, r"^validation:"),
        ({"validation": (jnp.ones((5, 3)),) * 3}, TypeError, r"^validation:"),
        ({"validation": (jnp.ones((5, 2)), jnp.ones((5, 1)))}, ValueError, r"^validation\[0\]:"),
        ({"validation": (jnp.ones((5, 3)), jnp.ones((4, 1)))}, ValueError, r"^validation\[1\]:"),
        ({"params": {"w": jnp.ones((3, 1))}}, TypeError, r"^params:"),
        ({"stop": "loss"}, TypeError, r"^stop:"),
    ],
    ids=lambda value: None if isinstance(value, (dict, type, str)) else str(value),
)
def test_bad_input_is_an_error_naming_the_argument(overrides, error, pattern):
    with pytest.raises(error, match=pattern):
        _bad_fit(**overrides)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"y": jnp.ones((11, 1))}, ValueError),
        ({"y": jnp.ones((12, 2))}, ValueError),
        ({"y": jnp.ones((12, 1)).at[3, 0].set(jnp.nan)}, ValueError),
        (
            {
                "params": [  # a 3-4-3 MLP (nothing compiles at import)
                    {"w": jnp.full((3, 4), 0.1), "b": jnp.zeros(4)},
                    {"w": jnp.full((4, 3), 0.1), "b": jnp.zeros(3)},
                ],
                "loss": "softmax_cross_entropy",
                "y": _classes().at[5].set(3),
            },
            ValueError,
        ),
        (
            {
                "params": [  # a 3-4-3 MLP (nothing compiles at import)
                    {"w": jnp.full((3, 4), 0.1), "b": jnp.zeros(4)},
                    {"w": jnp.full((4, 3), 0.1), "b": jnp.zeros(3)},
                ],
                "loss": "softmax_cross_entropy",
                "y": _classes().at[0].set(-1),
            },
            ValueError,
        ),
    ],
    ids=["y-rows", "y-columns", "y-nan", "label-too-large", "label-negative"],
)
def test_bad_targets_are_errors_naming_y(overrides, error):
    """BUG (reported): fit checks the targets with the name of the inputs, so every one of
    these messages begins ``x:`` although ``y`` is at fault."""
    with pytest.raises(error) as info:
        _bad_fit(**overrides)
    message = str(info.value)
    assert message.startswith("y:") or message.startswith("y "), message


@pytest.mark.slow
def test_bad_labels_name_the_valid_range():
    params = mlp.init(jax.random.key(0), [3, 4, 3])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        _bad_fit(params=params, loss="softmax_cross_entropy", y=_classes().at[5].set(7))


@pytest.mark.slow
def test_stop_on_a_metric_not_recorded_is_a_value_error():
    with pytest.raises(ValueError, match=r"^stop:.*val_loss"):
        _bad_fit(stop=stopping.target("val_loss", 0.1))

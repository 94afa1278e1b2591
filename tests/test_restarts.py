"""Vmapped restarts: every run equals the same run trained alone with ``fit``; the best is
chosen by the metric; runs stop, and diverge, on their own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fungrad
from fungrad import mlp, optim, stopping

RTOL = 1e-10


def _assert_trees_close(actual, expected, rtol=RTOL, atol=1e-13):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


def _run(tree, r):
    return jax.tree.map(lambda leaf: leaf[r], tree)


def _assert_run_equals_fit(result, r, alone):
    """Run ``r`` of a RestartsResult against a FitResult of the same run trained alone."""
    epochs = int(result.epochs_run[r])
    assert epochs == alone.epochs_run
    assert result.stop_reasons[r] == alone.stop_reason
    assert set(result.history) == set(alone.history)
    for name, values in result.history.items():
        np.testing.assert_allclose(values[r, :epochs], alone.history[name], rtol=RTOL, atol=1e-13)
        assert np.all(np.isnan(values[r, epochs:])), name
    _assert_trees_close(_run(result.params, r), alone.params)
    assert int(result.state.step[r]) == int(alone.state.step)


def _blobs(key, n):
    key_labels, key_noise = jax.random.split(key)
    labels = jax.random.bernoulli(key_labels, 0.5, (n,)).astype(jnp.int32)
    centers = jnp.where(labels[:, None] == 1, 1.0, -1.0) * jnp.array([1.0, 0.5])
    return centers + 0.9 * jax.random.normal(key_noise, (n, 2), jnp.float64), labels


# --------------------------------------------------------------------------- several inits

SIZES = [2, 6, 2]
CLASSIFICATION = dict(
    loss="softmax_cross_entropy",
    optimizer=optim.momentum(0.05, 0.9),
    epochs=4,
    batch_size=8,  # 26 samples: three full batches and one of 2
)


@pytest.fixture(scope="module")
def classification():
    x, y = _blobs(jax.random.key(1), 26)
    validation = _blobs(jax.random.key(2), 20)
    init_keys = jax.random.split(jax.random.key(3), 3)
    stacked = jax.vmap(lambda k: mlp.init(k, SIZES, dtype=jnp.float64))(init_keys)
    result = fungrad.fit_restarts(
        stacked, x, y, key=jax.random.key(4), validation=validation, **CLASSIFICATION
    )
    return x, y, validation, init_keys, result


@pytest.mark.slow
def test_restarts_over_init_keys_equal_fit_one_by_one(classification):
    x, y, validation, init_keys, result = classification
    assert isinstance(result, fungrad.RestartsResult)
    np.testing.assert_array_equal(
        jax.random.key_data(result.keys),
        jax.random.key_data(jax.random.split(jax.random.key(4), 3)),
    )
    for r in range(3):
        alone = fungrad.fit(
            mlp.init(init_keys[r], SIZES, dtype=jnp.float64),
            x,
            y,
            key=result.keys[r],
            validation=validation,
            **CLASSIFICATION,
        )
        _assert_run_equals_fit(result, r, alone)
    # The runs did differ: restarts are not copies of one run.
    finals = result.history["val_loss"][:, -1]
    assert len(set(np.round(finals, 8))) == 3


@pytest.mark.slow
def test_best_run_is_the_lowest_final_val_loss_by_default(classification):
    *_, result = classification
    assert result.metric == "val_loss"
    final = result.history["val_loss"][np.arange(3), result.epochs_run - 1]
    assert result.best_index == int(np.argmin(final))
    _assert_trees_close(result.best_params, _run(result.params, result.best_index), rtol=0)


@pytest.mark.slow
def test_a_list_of_params_equals_stacked_params_and_select_max_accuracy(classification):
    x, y, validation, init_keys, stacked = classification
    params = [mlp.init(k, SIZES, dtype=jnp.float64) for k in init_keys]
    result = fungrad.fit_restarts(
        params,
        x,
        y,
        key=jax.random.key(4),
        validation=validation,
        select="val_accuracy",
        **CLASSIFICATION,
    )
    _assert_trees_close(result.params, stacked.params)
    for name in stacked.history:
        np.testing.assert_allclose(result.history[name], stacked.history[name], rtol=RTOL)
    assert result.metric == "val_accuracy"
    final = result.history["val_accuracy"][np.arange(3), result.epochs_run - 1]
    assert result.best_index == int(np.argmax(final))
    # A max-mode choice picks the highest accuracy, not the lowest.
    assert final[result.best_index] == final.max()


# --------------------------------------------------------------------------- a learning-rate grid

LEARNING_RATES = [0.03, 0.1, 0.3]
TARGET = stopping.target("loss", 0.12)


def _regression():
    x = jax.random.normal(jax.random.key(5), (24, 2), jnp.float64)
    y = jnp.sin(x[:, :1]) - 0.5 * x[:, 1:]
    params = mlp.init(jax.random.key(6), [2, 8, 1], dtype=jnp.float64, activation="tanh")
    return params, x, y


REGRESSION = dict(loss="l2", epochs=40, activation="tanh", stop=TARGET)


@pytest.fixture(scope="module")
def grid():
    params, x, y = _regression()
    result = fungrad.fit_restarts(
        params,
        x,
        y,
        optimizer=optim.sgd,
        learning_rates=LEARNING_RATES,
        key=jax.random.key(7),
        **REGRESSION,
    )
    return params, x, y, result


@pytest.mark.slow
def test_a_learning_rate_grid_equals_fit_one_by_one_with_per_run_stops(grid):
    params, x, y, result = grid
    for r, lr in enumerate(LEARNING_RATES):
        alone = fungrad.fit(params, x, y, optimizer=optim.sgd(lr), key=result.keys[r], **REGRESSION)
        _assert_run_equals_fit(result, r, alone)
    # The runs stop at different epochs, on the target or on the cap.
    assert len(set(result.epochs_run.tolist())) == 3
    assert TARGET.name in result.stop_reasons
    for r, reason in enumerate(result.stop_reasons):
        if reason == TARGET.name:
            assert result.history["loss"][r, result.epochs_run[r] - 1] <= 0.12
            assert np.all(result.history["loss"][r, : result.epochs_run[r] - 1] > 0.12)
        else:
            assert reason.startswith("epochs")
            assert result.epochs_run[r] == REGRESSION["epochs"]


@pytest.mark.slow
def test_best_of_the_grid_is_the_lowest_final_loss(grid):
    *_, result = grid
    assert result.metric == "loss"
    final = result.history["loss"][np.arange(3), result.epochs_run - 1]
    assert result.best_index == int(np.argmin(final))


@pytest.mark.slow
def test_a_diverging_learning_rate_does_not_win_nor_disturb_the_others(grid):
    params, x, y, reference = grid
    result = fungrad.fit_restarts(
        params,
        x,
        y,
        optimizer=optim.sgd,
        learning_rates=[*LEARNING_RATES, 1e8],
        key=jax.random.key(7),
        **REGRESSION,
    )
    assert result.stop_reasons[3].startswith("diverged")
    for leaf in jax.tree.leaves(_run(result.params, 3)):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # Full-batch runs do not depend on their key, so runs 0-2 must match the grid without it.
    assert result.stop_reasons[:3] == reference.stop_reasons
    np.testing.assert_array_equal(result.epochs_run[:3], reference.epochs_run)
    for name in reference.history:
        np.testing.assert_allclose(
            result.history[name][:3], reference.history[name], rtol=RTOL, atol=1e-13
        )
    _assert_trees_close(_run(result.params, slice(0, 3)), reference.params)
    assert result.best_index == reference.best_index != 3


@pytest.mark.slow
def test_a_new_learning_rate_grid_does_not_recompile(count_compilations, grid):
    """BUG (reported): fit_restarts promises "the learning rate is then a traced value, so a
    new grid does not recompile the step", but it builds a fresh ``jax.jit`` on every call."""
    params, x, y, _ = grid
    with count_compilations() as compiled:
        fungrad.fit_restarts(
            params,
            x,
            y,
            optimizer=optim.sgd,
            learning_rates=[0.01, 0.03, 0.05],
            key=jax.random.key(7),
            **REGRESSION,
        )
    assert compiled == []


# --------------------------------------------------------------------------- bad input


def _bad_restarts(**overrides):
    params, x, y = _regression()
    kwargs = dict(
        params=params,
        x=x,
        y=y,
        loss="l2",
        optimizer=optim.sgd,
        learning_rates=[0.1, 0.2],
        epochs=2,
        key=jax.random.key(0),
    )
    kwargs.update(overrides)
    return fungrad.fit_restarts(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        ({"learning_rates": [0.1, -0.2]}, ValueError, r"^learning_rates:"),
        ({"learning_rates": [0.1, float("nan")]}, ValueError, r"^learning_rates:"),
        ({"learning_rates": []}, ValueError, r"^learning_rates:"),
        ({"learning_rates": [[0.1, 0.2]]}, ValueError, r"^learning_rates:"),
        ({"optimizer": optim.sgd(0.1)}, TypeError, r"^optimizer:.*factory"),
        ({"learning_rates": None}, TypeError, r"^optimizer:"),
        ({"select": "val_loss"}, ValueError, r"^select:"),
        ({"select": "loss", "mode": "lowest"}, ValueError, r"^mode:"),
        ({"epochs": 0}, ValueError, r"^epochs:"),
        ({"batch_size": 25}, ValueError, r"^batch_size:"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_an_error_naming_the_argument(overrides, error, pattern):
    with pytest.raises(error, match=pattern):
        _bad_restarts(**overrides)


@pytest.mark.slow
def test_learning_rates_must_match_the_runs():
    params, *_ = _regression()
    stacked = jax.tree.map(lambda leaf: jnp.stack([leaf] * 3), params)
    with pytest.raises(ValueError, match=r"^learning_rates:.*3"):
        _bad_restarts(params=stacked, learning_rates=[0.1, 0.2])


def test_one_unstacked_mlp_without_learning_rates_is_a_value_error():
    params, *_ = _regression()
    with pytest.raises(ValueError, match=r"^params:"):
        _bad_restarts(params=params, learning_rates=None, optimizer=optim.sgd(0.1))

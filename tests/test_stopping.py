"""Stop conditions: the predicates on hand-made histories (jitted), and the runs they end."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fungrad
from fungrad import mlp, optim, stopping

NAN = math.nan


def _history(**metrics):
    return {name: jnp.asarray(values, jnp.float64) for name, values in metrics.items()}


def _jitted(condition):
    return jax.jit(lambda history, epoch: condition.predicate(history, epoch))


def _evaluate(condition, history, epochs):
    predicate = _jitted(condition)
    return [bool(predicate(history, jnp.asarray(e, jnp.int32))) for e in epochs]


# --------------------------------------------------------------------------- predicates


def test_max_epochs_predicate():
    history = _history(loss=[3.0, 2.0, 1.0, NAN, NAN])
    condition = stopping.max_epochs(3)
    assert condition.name == "max_epochs(3)"
    assert condition.metrics == ()
    assert _evaluate(condition, history, range(5)) == [False, False, True, True, True]


def test_target_predicate_min_and_max():
    history = _history(loss=[3.0, 2.0, 1.0, 0.5, NAN], val_accuracy=[0.2, 0.5, 0.9, 0.95, NAN])
    below = stopping.target("loss", 1.0)
    assert below.metrics == ("loss",)
    assert "loss" in below.name and "<=" in below.name
    assert _evaluate(below, history, range(5)) == [False, False, True, True, False]
    above = stopping.target("val_accuracy", 0.9, "max")
    assert above.metrics == ("val_accuracy",)
    assert "val_accuracy" in above.name and ">=" in above.name
    assert _evaluate(above, history, range(5)) == [False, False, True, True, False]


def test_plateau_predicate_needs_patience_small_changes_in_a_row():
    loss = [5.0, 4.0, 3.99995, 3.9999, 3.99985, 3.0, 2.99999, 2.99998, NAN, NAN]
    history = _history(loss=loss)
    condition = stopping.plateau("loss", tol=1e-4, patience=3)
    assert condition.metrics == ("loss",)
    # Changes: 1, 5e-5, 5e-5, 5e-5, ~1, 1e-5, 1e-5, then NaN.
    expected = [False, False, False, False, True, False, False, False, False, False]
    assert _evaluate(condition, history, range(10)) == expected
    condition = stopping.plateau("loss", tol=1e-4, patience=2)
    expected = [False, False, False, True, True, False, False, True, False, False]
    assert _evaluate(condition, history, range(10)) == expected


def test_plateau_predicate_does_not_fire_before_patience_epochs_even_on_a_flat_history():
    history = _history(loss=[1.0] * 6)
    condition = stopping.plateau("loss", tol=0.0, patience=4)
    assert _evaluate(condition, history, range(6)) == [False] * 4 + [True] * 2


def test_grad_norm_below_predicate_is_strict():
    history = _history(grad_norm=[1.0, 0.1, 0.01, 0.001, NAN])
    condition = stopping.grad_norm_below(0.01)
    assert condition.metrics == ("grad_norm",)
    assert _evaluate(condition, history, range(5)) == [False, False, False, True, False]


def test_predicates_vmap_over_histories():
    """Restarts evaluate each run's predicate on its own history under vmap."""
    histories = _history(loss=[[3.0, 2.0, 1.0], [3.0, 0.5, 0.4]])
    condition = stopping.target("loss", 1.0)
    result = jax.jit(jax.vmap(condition.predicate, in_axes=(0, None)))(histories, 1)
    assert result.tolist() == [False, True]


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: stopping.max_epochs(0), "n"),
        (lambda: stopping.max_epochs(-2), "n"),
        (lambda: stopping.max_epochs(2.5), "n"),
        (lambda: stopping.max_epochs(True), "n"),
        (lambda: stopping.target("loss", 0.1, mode="up"), "mode"),
        (lambda: stopping.plateau("loss", tol=-1e-3), "tol"),
        (lambda: stopping.plateau("loss", tol=math.nan), "tol"),
        (lambda: stopping.plateau("loss", patience=0), "patience"),
        (lambda: stopping.plateau("loss", patience=1.5), "patience"),
        (lambda: stopping.grad_norm_below(-1.0), "tol"),
        (lambda: stopping.grad_norm_below("small"), "tol"),
    ],
)
def test_bad_arguments_to_stop_factories_are_value_errors_naming_them(make, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        make()


# --------------------------------------------------------------------------- in fit
# The lesson's parabola L(w) = w^2 + 1 under GD with lr = 0.1: w_e = 3 * 0.8^e before epoch e,
# so history["loss"][e] = 9 * 0.64^e + 1 and history["grad_norm"][e] = 6 * 0.8^e.

X_DUMMY = jnp.zeros((4, 1), jnp.float64)


def _parabola(params, x, y):
    w = params["w"]
    return w**2 + 1, {"w": 2 * w}


def _fit_parabola(epochs=60, learning_rate=0.1, **kwargs):
    return fungrad.fit(
        {"w": jnp.asarray(3.0, jnp.float64)},
        X_DUMMY,
        X_DUMMY,
        loss="l2",
        optimizer=optim.gd(learning_rate),
        epochs=epochs,
        key=jax.random.key(0),
        gradients=_parabola,
        **kwargs,
    )


def test_parabola_history_follows_the_closed_form():
    result = _fit_parabola(epochs=8)
    e = np.arange(8)
    np.testing.assert_allclose(result.history["loss"], 9 * 0.64**e + 1, rtol=1e-13)
    np.testing.assert_allclose(result.history["grad_norm"], 6 * 0.8**e, rtol=1e-13)


def test_max_epochs_stops_after_n_epochs():
    result = _fit_parabola(epochs=10, stop=stopping.max_epochs(3))
    assert result.epochs_run == 3
    assert result.stop_reason == "max_epochs(3)"
    assert len(result.history["loss"]) == 3
    assert float(result.params["w"]) == pytest.approx(3 * 0.8**3, rel=1e-13)


def test_the_epochs_cap_names_itself():
    result = _fit_parabola(epochs=5, stop=stopping.target("loss", 0.5))
    assert result.epochs_run == 5
    assert result.stop_reason.startswith("epochs")
    assert "5" in result.stop_reason
    # max_epochs beyond the cap: the cap still ends the run.
    result = _fit_parabola(epochs=4, stop=stopping.max_epochs(20))
    assert result.epochs_run == 4
    assert result.stop_reason.startswith("epochs")


def test_target_loss_stops_at_the_first_epoch_that_meets_it():
    threshold = 1.5
    result = _fit_parabola(stop=stopping.target("loss", threshold))
    loss = result.history["loss"]
    assert loss[-1] <= threshold < loss[-2]
    assert np.all(loss[:-1] > threshold)
    # 9 * 0.64^e <= 0.5 first at e = 7.
    assert result.epochs_run == 8
    assert result.stop_reason == stopping.target("loss", threshold).name


def test_grad_norm_below_stops_when_the_gradient_is_small():
    tol = 0.05
    result = _fit_parabola(stop=stopping.grad_norm_below(tol))
    grad_norm = result.history["grad_norm"]
    assert grad_norm[-1] < tol <= grad_norm[-2]
    assert result.epochs_run == int(np.ceil(np.log(tol / 6) / np.log(0.8))) + 1
    assert result.stop_reason == stopping.grad_norm_below(tol).name


def _plateau_holds(values, epoch, tol, patience):
    if epoch < patience:
        return False
    return bool(np.all(np.abs(np.diff(values[epoch - patience : epoch + 1])) <= tol))


@pytest.mark.parametrize(
    ("learning_rate", "tol", "patience"),
    [(1e-9, 1e-6, 3), (0.1, 1e-3, 4)],
    ids=["tiny-steps", "converging"],
)
def test_plateau_stops_at_the_first_epoch_the_rule_holds(learning_rate, tol, patience):
    result = _fit_parabola(
        epochs=100, learning_rate=learning_rate, stop=stopping.plateau("loss", tol, patience)
    )
    loss = result.history["loss"]
    assert result.stop_reason.startswith("plateau")
    holds = [_plateau_holds(loss, e, tol, patience) for e in range(result.epochs_run)]
    assert holds == [False] * (result.epochs_run - 1) + [True]
    if learning_rate < 1e-6:
        assert result.epochs_run == patience + 1
    else:
        assert result.epochs_run > patience + 5


def test_the_first_stop_that_holds_wins():
    # loss: 10, 6.76, 4.69, ... so target(loss <= 5) holds at epoch 2, max_epochs(2) at epoch 1.
    result = _fit_parabola(stop=[stopping.target("loss", 5.0), stopping.max_epochs(2)])
    assert (result.epochs_run, result.stop_reason) == (2, "max_epochs(2)")
    result = _fit_parabola(stop=[stopping.max_epochs(5), stopping.target("loss", 5.0)])
    assert result.epochs_run == 3
    assert result.stop_reason == stopping.target("loss", 5.0).name


def test_on_a_tie_the_first_stop_in_the_list_wins():
    # Both hold first after epoch 1 (loss 6.76 <= 7).
    first, second = stopping.target("loss", 7.0), stopping.max_epochs(2)
    assert _fit_parabola(stop=[first, second]).stop_reason == first.name
    assert _fit_parabola(stop=[second, first]).stop_reason == second.name


def _blobs(key, n):
    key_labels, key_noise = jax.random.split(key)
    labels = jax.random.bernoulli(key_labels, 0.5, (n,)).astype(jnp.int32)
    centers = jnp.where(labels[:, None] == 1, 1.0, -1.0) * jnp.array([1.0, 0.5])
    return centers + 0.8 * jax.random.normal(key_noise, (n, 2), jnp.float64), labels


@pytest.mark.slow
def test_target_val_accuracy_max_stops_at_the_first_epoch_that_meets_it():
    x, y = _blobs(jax.random.key(1), 64)
    validation = _blobs(jax.random.key(2), 40)
    params = mlp.init(jax.random.key(3), [2, 8, 2], dtype=jnp.float64)
    threshold = 0.8
    condition = stopping.target("val_accuracy", threshold, "max")
    result = fungrad.fit(
        params,
        x,
        y,
        loss="softmax_cross_entropy",
        optimizer=optim.sgd(0.02),
        epochs=200,
        key=jax.random.key(4),
        batch_size=16,
        validation=validation,
        stop=condition,
    )
    accuracy = result.history["val_accuracy"]
    assert result.stop_reason == condition.name
    assert result.epochs_run >= 2
    assert accuracy[-1] >= threshold > accuracy[-2]
    assert np.all(accuracy[:-1] < threshold)
    final = fungrad.evaluate(result.params, *validation, loss="softmax_cross_entropy")
    assert final["accuracy"] == pytest.approx(accuracy[-1], abs=1e-12)


@pytest.mark.parametrize(
    "condition",
    [
        stopping.target("val_loss", 0.1),
        stopping.plateau("val_loss"),
        stopping.target("accuracy", 0.9, "max"),
    ],
    ids=lambda c: c.name,
)
def test_a_stop_on_a_metric_the_run_does_not_record_is_a_value_error(condition):
    with pytest.raises(ValueError, match=r"stop:.*(val_loss|accuracy)"):
        _fit_parabola(stop=condition)


def test_a_stop_that_is_not_a_condition_is_a_type_error():
    with pytest.raises(TypeError, match="stop"):
        _fit_parabola(stop="loss")
    with pytest.raises(TypeError, match="stop"):
        _fit_parabola(stop=[stopping.max_epochs(2), lambda history, epoch: True])


def test_factories_take_numpy_and_jax_scalars_and_return_the_same_condition():
    a = stopping.target("loss", 0.5)
    assert stopping.target("loss", np.float32(0.5)) is a
    assert stopping.target("loss", jnp.asarray(0.5)) is a
    assert stopping.plateau("loss", 1e-3, 2) is stopping.plateau("loss", np.float64(1e-3), 2)
    assert stopping.grad_norm_below(jnp.asarray(1e-3)) is stopping.grad_norm_below(1e-3)


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: stopping.target("loss", float("nan")), r"^threshold:"),
        (lambda: stopping.target("loss", "low"), r"^threshold:"),
        (lambda: stopping.target(3, 0.5), r"^metric:"),
        (lambda: stopping.plateau("", 1e-3, 2), r"^metric:"),
        (lambda: stopping.grad_norm_below(float("inf")), r"^tol:"),
    ],
)
def test_factories_reject_bad_thresholds_and_metric_names(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


# --------------------------------------------------------------------------- direction


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("loss", "min"),
        ("val_loss", "min"),
        ("grad_norm", "min"),
        ("accuracy", "max"),
        ("val_accuracy", "max"),
        ("top5_accuracy_smoothed", "max"),
    ],
)
def test_direction_follows_the_metric_name(metric, expected):
    assert stopping.direction(metric) == expected
    assert stopping.direction(metric, None) == expected


@pytest.mark.parametrize("mode", ["min", "max"])
def test_an_explicit_direction_wins_over_the_name(mode):
    assert stopping.direction("val_accuracy", mode) == mode
    assert stopping.direction("loss", mode) == mode


@pytest.mark.parametrize("mode", ["up", "MIN", "", 1, ["min"]])
def test_a_bad_direction_is_a_value_error_naming_mode(mode):
    with pytest.raises(ValueError, match=r"^mode: expected 'min', 'max'"):
        stopping.direction("loss", mode)


def test_target_default_direction_follows_the_metric():
    history = _history(loss=[3.0, 2.0, 1.0, 0.5], val_accuracy=[0.2, 0.5, 0.9, 0.95])
    above = stopping.target("val_accuracy", 0.9)
    assert above.name == "target(val_accuracy >= 0.9)"
    assert _evaluate(above, history, range(4)) == [False, False, True, True]
    below = stopping.target("loss", 1.0)
    assert below.name == "target(loss <= 1)"
    assert _evaluate(below, history, range(4)) == [False, False, True, True]
    # An explicit mode still overrides the name.
    assert _evaluate(stopping.target("val_accuracy", 0.3, "min"), history, range(4)) == [
        True,
        False,
        False,
        False,
    ]


def test_target_is_cached_on_the_resolved_direction():
    assert stopping.target("val_accuracy", 0.9) is stopping.target("val_accuracy", 0.9, "max")
    assert stopping.target("loss", 0.1) is stopping.target("loss", 0.1, "min")
    assert stopping.target("accuracy", 0.9, "min") is not stopping.target("accuracy", 0.9)


# --------------------------------------------------------------------------- no_improvement


def _keras_wait_reached(values, epoch, patience, min_delta, mode):
    """Keras' EarlyStopping rule in plain Python over ``values[: epoch + 1]``."""
    best = math.inf if mode == "min" else -math.inf
    wait = 0
    for value in values[: epoch + 1]:
        # NaN compares False, so it never improves.
        improved = value < best - min_delta if mode == "min" else value > best + min_delta
        if improved:
            best, wait = value, 0
        else:
            wait += 1
    return wait >= patience


def test_no_improvement_stops_patience_epochs_after_the_best():
    # best at epoch 1 (2.0); 2.5 and 2.2 do not beat it.
    history = _history(val_loss=[3.0, 2.0, 2.5, 2.2, 1.0, 1.0, 1.0, NAN])
    condition = stopping.no_improvement("val_loss", patience=2)
    assert condition.metrics == ("val_loss",)
    assert condition.name == "no_improvement(val_loss: no decrease > 0 for 2 epochs)"
    # A tie (1.0 again) is not an improvement; NaN (not yet run) counts as one more epoch.
    expected = [False, False, False, True, False, False, True, True]
    assert _evaluate(condition, history, range(8)) == expected


def test_no_improvement_min_delta_needs_a_gain_larger_than_it():
    history = _history(val_loss=[2.0, 1.5, 1.25, 1.375, 1.0, 0.5])
    condition = stopping.no_improvement("val_loss", patience=2, min_delta=0.25)
    assert "0.25" in condition.name
    # best: 2.0, 1.5 (gain 0.5), then 1.25 (gain exactly 0.25: no), 1.375 (no), 1.0 (yes).
    expected = [False, False, False, True, False, False]
    assert _evaluate(condition, history, range(6)) == expected


def test_no_improvement_on_an_accuracy_waits_for_it_to_rise():
    history = _history(val_accuracy=[0.5, 0.7, 0.6, 0.65, 0.9])
    condition = stopping.no_improvement("val_accuracy", patience=2)
    assert condition is stopping.no_improvement("val_accuracy", 2, 0.0, "max")
    assert "increase" in condition.name
    assert _evaluate(condition, history, range(5)) == [False, False, False, True, False]
    as_min = stopping.no_improvement("val_accuracy", patience=2, mode="min")
    assert _evaluate(as_min, history, range(5)) == [False, False, True, True, True]


def test_no_improvement_ignores_entries_after_the_epoch():
    history = _history(loss=[1.0, 2.0, 3.0, 0.0, 0.0])
    condition = stopping.no_improvement("loss", patience=2)
    assert _evaluate(condition, history, [2]) == [True]
    assert _evaluate(condition, history, [3, 4]) == [False, False]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("patience", "min_delta", "mode"),
    [(1, 0.0, "min"), (2, 0.0, "max"), (3, 0.0, "min"), (5, 0.0, "max")]
    + [(1, 0.5, "max"), (2, 0.5, "min"), (3, 1.25, "max"), (2, 1.25, "min")],
)
def test_no_improvement_matches_the_keras_rule(patience, min_delta, mode):
    """300 random histories with ties and NaNs, every epoch of each, in one vmapped call."""
    rng = np.random.default_rng(patience * 100 + int(min_delta * 4) * 10 + (mode == "max"))
    levels = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, NAN])
    values = rng.choice(levels, (300, 10))
    # Every entry is filled: the predicate must itself ignore those after the epoch.
    condition = stopping.no_improvement("val_loss", patience, min_delta, mode)
    over_epochs = jax.vmap(condition.predicate, in_axes=(None, 0))
    predicate = jax.jit(jax.vmap(over_epochs, in_axes=(0, None)))
    actual = predicate({"val_loss": jnp.asarray(values)}, jnp.arange(10, dtype=jnp.int32))
    expected = [
        [_keras_wait_reached(list(row), e, patience, min_delta, mode) for e in range(10)]
        for row in values
    ]
    assert actual.tolist() == expected


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_no_improvement_under_vmap_over_histories_and_epochs(dtype):
    """As in restarts: a batch of runs, each with its own history and its own epoch."""
    rng = np.random.default_rng(7)
    runs, length = 64, 16
    values = 1 + np.cumsum(rng.normal(0.0, 0.3, (runs, length)), axis=1)
    values[rng.random((runs, length)) < 0.1] = NAN
    epochs = rng.integers(0, length, runs)
    for e, row in zip(epochs, values, strict=True):
        row[e + 1 :] = NAN  # as the loop records it
    values = values.astype(dtype)
    stopped = []
    for patience, min_delta, mode in [(1, 0.0, "min"), (3, 0.05, "min"), (2, 0.1, "max")]:
        condition = stopping.no_improvement("val_loss", patience, min_delta, mode)
        predicate = jax.jit(jax.vmap(condition.predicate))
        actual = predicate({"val_loss": jnp.asarray(values)}, jnp.asarray(epochs, jnp.int32))
        expected = [
            # Compare in the history's precision, as the predicate does.
            _keras_wait_reached(
                [float(v) for v in row], int(e), patience, float(dtype(min_delta)), mode
            )
            for row, e in zip(values, epochs, strict=True)
        ]
        assert actual.tolist() == expected
        stopped.append(sum(expected))
    assert all(0 < n < runs for n in stopped)  # both outcomes occur


def test_no_improvement_factory_is_cached_on_normalised_arguments():
    a = stopping.no_improvement("val_loss", 3)
    assert stopping.no_improvement("val_loss", 3, 0, "min") is a
    assert stopping.no_improvement("val_loss", 3, np.float32(0.0)) is a
    assert stopping.no_improvement("val_loss", 3, 0.1) is not a


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"patience": 0}, "patience"),
        ({"patience": 2.0}, "patience"),
        ({"patience": True}, "patience"),
        ({"patience": 2, "min_delta": -0.1}, "min_delta"),
        ({"patience": 2, "min_delta": math.inf}, "min_delta"),
        ({"patience": 2, "min_delta": "small"}, "min_delta"),
        ({"patience": 2, "mode": "down"}, "mode"),
    ],
)
def test_bad_no_improvement_arguments_are_value_errors_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        stopping.no_improvement("val_loss", **kwargs)
    with pytest.raises(ValueError, match=r"^metric:"):
        stopping.no_improvement("", 2)


# A run whose validation loss falls, then rises: GD on (w - mean(y))^2 with training targets
# 0 pulls w_e = 3 * 0.8^(e + 1) (after epoch e) towards 0, while the validation targets are 1,
# so val_loss[e] = (3 * 0.8^(e + 1) - 1)^2 is smallest at epoch 4 (w = 0.98304), then grows.


def _pulled_to_mean(params, x, y):
    w = params["w"]
    return (w - jnp.mean(y)) ** 2, {"w": 2 * (w - jnp.mean(y))}


OVERFIT_TRAIN = (X_DUMMY, jnp.zeros((4, 1), jnp.float64))
OVERFIT_VALIDATION = (X_DUMMY, jnp.ones((4, 1), jnp.float64))


def _fit_overfitting(stop, learning_rate=0.1, epochs=40):
    return fungrad.fit(
        {"w": jnp.asarray(3.0, jnp.float64)},
        *OVERFIT_TRAIN,
        loss="l2",
        optimizer=optim.gd(learning_rate),
        epochs=epochs,
        key=jax.random.key(0),
        gradients=_pulled_to_mean,
        validation=OVERFIT_VALIDATION,
        stop=stop,
    )


@pytest.mark.slow
@pytest.mark.parametrize("patience", [1, 3, 6])
def test_no_improvement_in_fit_stops_patience_epochs_after_the_best_epoch(patience):
    condition = stopping.no_improvement("val_loss", patience)
    result = _fit_overfitting(condition)
    val_loss = result.history["val_loss"]
    e = np.arange(result.epochs_run)
    np.testing.assert_allclose(val_loss, (3 * 0.8 ** (e + 1) - 1) ** 2, rtol=1e-12)
    assert int(np.argmin(val_loss)) == 4
    assert result.epochs_run == 4 + patience + 1
    assert result.stop_reason == condition.name


@pytest.mark.slow
def test_no_improvement_in_fit_with_min_delta_counts_only_large_gains():
    # Gains: 1.96 -> 0.846 -> 0.287 -> 0.052 -> 0.0003; with min_delta 0.1 the last one is too
    # small, so the best stays epoch 3 and the run stops one epoch earlier than without it.
    condition = stopping.no_improvement("val_loss", 2, min_delta=0.1)
    result = _fit_overfitting(condition)
    assert result.epochs_run == 3 + 2 + 1
    assert result.stop_reason == condition.name
    assert _fit_overfitting(stopping.no_improvement("val_loss", 2)).epochs_run == 4 + 2 + 1


@pytest.mark.slow
def test_no_improvement_in_restarts_each_run_stops_on_its_own():
    # lr 0.05: w_e = 3 * 0.9^(e + 1), closest to 1 at epoch 9; lr 0.1: at epoch 4.
    condition = stopping.no_improvement("val_loss", 3)
    result = fungrad.fit_restarts(
        {"w": jnp.full((2,), 3.0, jnp.float64)},
        *OVERFIT_TRAIN,
        loss="l2",
        optimizer=optim.factory("gd"),
        learning_rates=[0.1, 0.05],
        epochs=40,
        key=jax.random.key(0),
        gradients=_pulled_to_mean,
        validation=OVERFIT_VALIDATION,
        stop=condition,
    )
    assert result.epochs_run.tolist() == [4 + 3 + 1, 9 + 3 + 1]
    assert result.stop_reasons == [condition.name] * 2
    for r, learning_rate in enumerate([0.1, 0.05]):
        alone = _fit_overfitting(condition, learning_rate)
        assert alone.epochs_run == result.epochs_run[r]
        np.testing.assert_allclose(
            result.history["val_loss"][r, : alone.epochs_run],
            alone.history["val_loss"],
            rtol=1e-12,
        )


# --------------------------------------------------------------------------- parse


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("max_epochs:50", lambda: stopping.max_epochs(50)),
        ("target:val_accuracy:0.97", lambda: stopping.target("val_accuracy", 0.97, "max")),
        ("target:val_accuracy:0.2:min", lambda: stopping.target("val_accuracy", 0.2, "min")),
        ("target:loss:1e-3", lambda: stopping.target("loss", 1e-3, "min")),
        ("target:loss:5:max", lambda: stopping.target("loss", 5.0, "max")),
        ("plateau:loss:1e-4:5", lambda: stopping.plateau("loss", 1e-4, 5)),
        ("grad_norm_below:0.01", lambda: stopping.grad_norm_below(0.01)),
        ("no_improvement:val_loss:5", lambda: stopping.no_improvement("val_loss", 5)),
        (
            "no_improvement:val_loss:5:0.001",
            lambda: stopping.no_improvement("val_loss", 5, 0.001),
        ),
        (
            "no_improvement:val_accuracy:3",
            lambda: stopping.no_improvement("val_accuracy", 3, mode="max"),
        ),
    ],
)
def test_parse_gives_the_factorys_condition(spec, expected):
    assert stopping.parse(spec) is expected()


def test_spec_help_lists_every_form():
    for form in [
        "max_epochs:N",
        "target:METRIC:VALUE[:min|max]",
        "plateau:METRIC:TOL:PATIENCE",
        "grad_norm_below:TOL",
        "no_improvement:METRIC:PATIENCE[:MIN_DELTA]",
    ]:
        assert form in stopping.SPEC_HELP


@pytest.mark.parametrize(
    "spec",
    ["", "early_stop:val_loss:5", "max_epochs", "max_epochs:3:4", "target:loss", "plateau:l:1"]
    + ["no_improvement:val_loss", "no_improvement:val_loss:3:0.1:9", "grad_norm_below"],
)
def test_parse_a_malformed_spec_quotes_it_and_lists_the_forms(spec):
    with pytest.raises(ValueError) as info:
        stopping.parse(spec)
    message = str(info.value)
    assert message.startswith(f"spec {spec!r}:")
    assert "\n" not in message
    assert message.endswith(stopping.SPEC_HELP)


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        ("max_epochs:ten", "N: expected a positive integer, got 'ten'"),
        ("max_epochs:0", "N: expected a positive integer, got '0'"),
        ("max_epochs:2.5", "N: expected a positive integer, got '2.5'"),
        ("target:loss:low", "VALUE: expected a finite number, got 'low'"),
        ("target:loss:nan", "VALUE: expected a finite number, got 'nan'"),
        ("target:loss:0.1:up", "mode: expected 'min', 'max'"),
        ("target::0.1", "metric: expected a metric name"),
        ("plateau:loss:-1:3", "TOL: expected a number >= 0, got '-1'"),
        ("plateau:loss:1e-3:x", "PATIENCE: expected a positive integer, got 'x'"),
        ("grad_norm_below:inf", "TOL: expected a finite number, got 'inf'"),
        ("no_improvement:val_loss:2.5", "PATIENCE: expected a positive integer, got '2.5'"),
        ("no_improvement:val_loss:3:-0.1", "MIN_DELTA: expected a number >= 0, got '-0.1'"),
    ],
)
def test_parse_a_bad_field_quotes_the_spec_and_says_what_is_wrong(spec, detail):
    with pytest.raises(ValueError) as info:
        stopping.parse(spec)
    message = str(info.value)
    assert message.startswith(f"spec {spec!r}: {detail}")
    assert "\n" not in message


def test_parse_rejects_a_non_string():
    with pytest.raises(ValueError, match=r"^spec: expected a string"):
        stopping.parse(3)

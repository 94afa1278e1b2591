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

"""Mixed precision: bfloat16 and float16 parameters, float32 losses, sums and statistics.

The parameters, the forward and backward passes and the updates stay in the parameters' dtype;
the loss, every sum over the batch (the mean loss, the metrics, the gradient norm) and the
optimizer's statistics are float32. Float32 and float64 programs are left exactly as they were.
"""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fungrad
from fungrad import backprop, checkpoint, data, losses, mlp, optim, runs
from fungrad.cli import main
from fungrad.train.epoch import rule_for_params

LOW = [jnp.bfloat16, jnp.float16]
LOW_IDS = ["bfloat16", "float16"]


@pytest.fixture(scope="module")
def digits():
    """Digits scaled to [0, 1], split 80/20 with a fixed seed."""
    loaded = data.load("digits")
    parts = data.split(loaded.x, loaded.y, seed=0, validation=0.0, test=0.2)
    return parts.x_train / 16, parts.y_train, parts.x_test / 16, parts.y_test


def small_problem(dtype, n=40, sizes=(4, 8, 3)):
    rng = np.random.default_rng(0)
    params = mlp.init(jax.random.key(0), list(sizes), dtype=dtype)
    return params, rng.normal(size=(n, sizes[0])), rng.integers(0, sizes[-1], size=n)


def leaves_equal(a, b):
    def plain(leaf):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(leaf)
        return np.asarray(leaf)

    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.array_equal(plain(u), plain(v)) for u, v in pairs)


def float_leaves(tree):
    return [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.floating)]


# --------------------------------------------------------------------------- the dtype rule


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (jnp.bfloat16, jnp.float32),
        (jnp.float16, jnp.float32),
        (jnp.float32, jnp.float32),
        (jnp.float64, jnp.float64),
        (jnp.int32, jnp.int32),
    ],
)
def test_accumulation_dtype(dtype, expected):
    assert losses.accumulation_dtype(dtype) == jnp.dtype(expected)


def test_wide_leaves_are_returned_untouched():
    """No cast is traced for float32 or float64: their programs cannot change."""
    tree = {"a": jnp.ones(3, jnp.float32), "b": jnp.ones(3, jnp.float64), "n": jnp.arange(3)}
    widened = losses.in_accumulation_dtype(tree)
    assert all(widened[name] is tree[name] for name in tree)
    assert losses.in_accumulation_dtype(jnp.ones(2, jnp.float16)).dtype == jnp.float32


# --------------------------------------------------------------------------- losses in float32


@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.parametrize(
    "loss", ["l2", "mse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy"]
)
@pytest.mark.slow
def test_loss_is_summed_in_float32(dtype, loss):
    """A 2048-sample mean of low-precision outputs equals float64 arithmetic to float32 accuracy.

    Summed in bfloat16 it would be off by about a percent (the sum's 8 significant bits).
    """
    rng = np.random.default_rng(1)
    params = [{"w": jnp.eye(8, dtype=dtype), "b": jnp.zeros(8, dtype)}]
    x = jnp.asarray(rng.normal(size=(2048, 8)), dtype)
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, 8, size=2048)
        z = np.asarray(x, np.float64)
        exact = np.log(np.exp(z).sum(1)) - z[np.arange(2048), y]
    else:
        y = rng.integers(0, 2, size=(2048, 8)).astype(np.float64)
        z = np.asarray(x, np.float64)
        exact = {
            "l2": ((z - y) ** 2).sum(1),
            "mse": ((z - y) ** 2).mean(1),
            "sigmoid_binary_cross_entropy": (np.logaddexp(z, 0) - z * y).sum(1),
        }[loss]
    value, grads = jax.jit(
        functools.partial(backprop.value_and_grad, activation="identity", loss=loss)
    )(params, x, y)
    assert value.dtype == jnp.float32
    assert grads[0]["w"].dtype == dtype
    np.testing.assert_allclose(value, exact.mean(), rtol=1e-5)


@pytest.mark.slow
def test_builtin_losses_compute_in_float32():
    logits = jnp.asarray([[300.0, 0.0, -300.0]], jnp.float16)  # e^300 overflows float16, not 32
    loss = losses.get_loss("softmax_cross_entropy")
    value = loss.fn(logits, jnp.asarray([2]))
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(value, [600.0], rtol=1e-6)
    assert loss.grad(logits, jnp.asarray([2])).dtype == jnp.float32


def test_accuracy_of_a_large_batch_is_exact():
    """``evaluate``'s accuracy is a float32 mean: 953 of 1000 reads 0.953, not bfloat16's 0.953125."""
    params = [{"w": jnp.eye(2, dtype=jnp.bfloat16), "b": jnp.zeros(2, jnp.bfloat16)}]
    x = np.tile([[1.0, 0.0]], (1000, 1))
    y = np.where(np.arange(1000) < 953, 0, 1)
    result = fungrad.evaluate(params, x, y, loss="softmax_cross_entropy", activation="identity")
    assert result["accuracy"] == pytest.approx(0.953, abs=1e-6)


def test_probability_targets_rounded_to_bfloat16_are_accepted():
    p = np.random.default_rng(2).dirichlet(np.ones(7), size=50)
    y = jnp.asarray(p, jnp.bfloat16)
    loss = losses.get_loss("softmax_cross_entropy")
    assert losses.prepare_targets(loss, y, (50, 7)).dtype == jnp.bfloat16
    off = jnp.asarray(p * 1.05, jnp.bfloat16)
    with pytest.raises(ValueError, match="summing to 1 within 0.0078125"):
        losses.prepare_targets(loss, off, (50, 7))


# --------------------------------------------------------------------------- inputs and params


@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
@pytest.mark.slow
def test_inputs_take_the_parameters_dtype(dtype):
    params, x, _ = small_problem(dtype)
    assert mlp.check_input(params, x).dtype == dtype
    assert mlp.check_input(params, x.astype(int)).dtype == dtype
    assert jax.jit(mlp.apply)(params, x).dtype == dtype
    # float32 params keep the existing rule: floats pass through, integers become float32+.
    wide = mlp.init(jax.random.key(0), [4, 3])
    assert mlp.check_input(wide, x).dtype == jnp.float64
    assert mlp.check_input(wide, x.astype(int)).dtype == jnp.float32


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
def test_integer_or_bool_params_are_a_type_error(dtype):
    params = [{"w": jnp.ones((4, 3), dtype), "b": jnp.zeros(3, jnp.float32)}]
    x, y = np.ones((5, 4)), np.zeros(5, int)
    message = rf"params\[0\]\['w'\]: expected a floating dtype .* got {jnp.dtype(dtype).name}"
    with pytest.raises(TypeError, match=message):
        mlp.apply(params, x)
    with pytest.raises(TypeError, match=message):
        fungrad.value_and_grad(params, x, y, loss="softmax_cross_entropy")
    with pytest.raises(TypeError, match=message):
        fungrad.fit(params, x, y, loss="softmax_cross_entropy", optimizer=optim.sgd(0.1),
                    epochs=1, key=jax.random.key(0))  # fmt: skip


def test_integer_params_of_any_model_are_a_type_error():
    def gradients(params, x, y):
        return jnp.sum(params["scale"] * x), params

    with pytest.raises(TypeError, match=r"params\['scale'\]: .* got int64"):
        fungrad.fit({"scale": np.ones(3, np.int64)}, np.ones((4, 3)), np.ones(4), loss="l2",
                    optimizer=optim.sgd(0.1), epochs=1, key=jax.random.key(0),
                    gradients=gradients)  # fmt: skip


# --------------------------------------------------------------------------- optimizer statistics


@pytest.mark.parametrize("name", ["momentum", "ema", "adam"])
@pytest.mark.slow
def test_mixed_precision_keeps_float32_statistics(name):
    params, _, _ = small_problem(jnp.bfloat16)
    rule = optim.mixed_precision(optim.from_name(name, 0.01))
    state = rule.init(params)
    statistics = [leaf for leaf in jax.tree.leaves(state) if leaf.ndim > 0]
    assert statistics and all(leaf.dtype == jnp.float32 for leaf in statistics)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    updates, state = rule.update(grads, state, params)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state) if leaf.ndim > 0)


@pytest.mark.slow
def test_mixed_precision_is_the_same_rule_for_float32():
    params, _, _ = small_problem(jnp.float32)
    adam = optim.adam(0.01)
    assert rule_for_params(adam, params) is adam
    grads = jax.tree.map(jnp.ones_like, params)

    def step(rule):
        return jax.make_jaxpr(lambda g, p: rule.update(g, rule.init(p), p))(grads, params)

    assert str(step(optim.mixed_precision(adam))) == str(step(adam))


def test_a_state_with_low_precision_statistics_is_refused_naming_the_fix():
    params, x, y = small_problem(jnp.bfloat16)
    adam = optim.adam(0.01)
    state = fungrad.TrainState(
        params, adam.init(params), jnp.zeros((), jnp.int32), jax.random.key(0)
    )
    with pytest.raises(ValueError, match=r"mu\[0\]\['b'\] is bfloat16.*optim\.mixed_precision"):
        fungrad.fit(params, x, y, loss="softmax_cross_entropy", optimizer=adam, epochs=1,
                    key=jax.random.key(1), initial_state=state)  # fmt: skip


@pytest.mark.slow
def test_adam_on_float16_does_not_underflow_to_nan():
    """In float16, Adam's ``nu = g^2`` underflows and ``eps = 1e-8`` rounds to 0: 0 / 0."""
    params, x, y = small_problem(jnp.float16)
    result = fungrad.fit(params, x, y, loss="softmax_cross_entropy", optimizer=optim.adam(0.01),
                         epochs=8, key=jax.random.key(1))  # fmt: skip
    assert not result.diverged
    assert result.history["loss"][-1] < result.history["loss"][0]
    plain = optax.adam(0.01)
    nu = plain.update(jax.tree.map(lambda p: jnp.full_like(p, 1e-4), params), plain.init(params))
    assert float(nu[1][0].nu[0]["w"][0, 0]) == 0.0  # what float16 statistics would hold


# --------------------------------------------------------------------------- training


@pytest.mark.slow
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
def test_fit_trains_in_mixed_precision(dtype, digits):
    x, y, x_test, y_test = digits
    params = mlp.init(jax.random.key(0), [64, 32, 10], dtype=dtype)
    result = fungrad.fit(params, x, y, loss="softmax_cross_entropy",
                         optimizer=optim.momentum(0.05), epochs=3, batch_size=64,
                         key=jax.random.key(1), validation=(x_test, y_test))  # fmt: skip
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(result.params))
    assert all(leaf.dtype == jnp.float32 for leaf in float_leaves(result.state.opt_state))
    assert all(values.dtype == np.float32 for values in result.history.values())
    assert result.history["loss"][-1] < 0.5 * result.history["loss"][0]
    assert result.history["val_accuracy"][-1] > 0.85


@pytest.mark.slow
def test_bfloat16_on_digits_reaches_95_percent(digits):
    x, y, x_test, y_test = digits
    params = mlp.init(jax.random.key(0), [64, 64, 10], dtype=jnp.bfloat16)
    result = fungrad.fit(params, x, y, loss="softmax_cross_entropy", optimizer=optim.adam(3e-3),
                         epochs=10, batch_size=32, key=jax.random.key(1))  # fmt: skip
    assert result.params[0]["w"].dtype == jnp.bfloat16
    test = fungrad.evaluate(result.params, x_test, y_test, loss="softmax_cross_entropy")
    assert test["accuracy"] >= 0.95


@pytest.mark.slow
def test_restarts_in_bfloat16():
    params, x, y = small_problem(jnp.bfloat16)
    result = fungrad.fit_restarts(params, x, y, loss="softmax_cross_entropy",
                                  optimizer=optim.factory("adam"), learning_rates=[0.01, 0.03],
                                  epochs=4, key=jax.random.key(1))  # fmt: skip
    assert result.best_params[0]["w"].dtype == jnp.bfloat16
    statistics = float_leaves(result.state.opt_state)
    assert statistics and all(leaf.dtype == jnp.float32 for leaf in statistics)
    assert np.all(np.isfinite(result.history["loss"]))


# --------------------------------------------------------------------------- saving and resuming


@pytest.mark.slow
@pytest.mark.parametrize("dtype", LOW, ids=LOW_IDS)
def test_low_precision_run_saves_resumes_and_predicts(dtype, tmp_path):
    params, x, y = small_problem(dtype, n=60)
    kw = dict(loss="softmax_cross_entropy", optimizer=optim.adam(0.01), batch_size=16,
              key=jax.random.key(1))  # fmt: skip
    full = fungrad.fit(params, x, y, epochs=4, **kw)
    path = tmp_path / "run.npz"

    def stop_after_two(epoch, metrics):
        if epoch == 1:
            raise fungrad.StopTraining("interrupted")

    first = fungrad.fit(params, x, y, epochs=4, checkpoint=path, save_every=0,
                        callback=stop_after_two, **kw)  # fmt: skip
    assert first.epochs_run == 2
    saved = checkpoint.restore(path)
    assert saved.state.params[0]["w"].dtype == dtype
    assert saved.history["loss"].dtype == np.float32
    resumed = fungrad.fit(params, x, y, epochs=4, initial_state=path, **kw)
    assert all(leaf.dtype == jnp.float32 for leaf in float_leaves(resumed.state.opt_state))
    assert leaves_equal(resumed.state, full.state)
    np.testing.assert_array_equal(resumed.history["loss"], full.history["loss"])

    fungrad.fit(params, x, y, epochs=4, checkpoint=path, **kw)
    run = runs.load_run(path)
    assert run.params[0]["w"].dtype == dtype
    expected = np.argmax(np.asarray(mlp.apply(full.params, x), np.float32), axis=1)
    np.testing.assert_array_equal(run.predict(x), expected)
    assert run.predict_scores(x).shape == (60, 3)


@pytest.mark.slow
def test_command_line_trains_in_bfloat16(tmp_path, capsys):
    status = main(["train", "--dtype", "bfloat16", "--out", str(tmp_path), "--epochs", "12",
                   "--json", "--no-plot"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert status == 0
    assert summary["test_accuracy"] >= 0.95
    saved = checkpoint.restore(tmp_path / "checkpoint.npz")
    assert saved.state.params[0]["w"].dtype == jnp.bfloat16
    run = runs.load_run(tmp_path)
    assert run.predict(np.zeros((2, 64))).shape == (2,)

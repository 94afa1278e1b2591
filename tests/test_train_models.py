"""fit, fit_restarts and evaluate on any pure model: a small CNN and a residual MLP.

The models are plain functions of a params dict. Each test trains for a few epochs on tiny
data; the compiled programs are shared between tests (the same model function, optimizer
object and settings), which is itself part of what is tested. Tests that compile a training
program are marked slow, as elsewhere; the checks of bad input compile nothing.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax
from test_train_saving import leaves_equal

import fungrad
from fungrad import checkpoint, mlp, optim, stopping
from fungrad.train import StopTraining

# --------------------------------------------------------------------------- models and data


def cnn(params, x):
    """conv 3x3 (SAME) -> relu -> 2x2 max pooling -> dense, on NHWC images."""
    h = lax.conv_general_dilated(
        x, params["conv"]["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    h = jax.nn.relu(h + params["conv"]["b"])
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    h = h.reshape(h.shape[0], -1)
    return h @ params["dense"]["w"] + params["dense"]["b"]


def cnn_init(key, dtype=jnp.float64):
    k1, k2 = jax.random.split(key)
    return {
        "conv": {"w": 0.4 * jax.random.normal(k1, (3, 3, 1, 4), dtype), "b": jnp.zeros(4, dtype)},
        "dense": {"w": 0.2 * jax.random.normal(k2, (36, 3), dtype), "b": jnp.zeros(3, dtype)},
    }


def _layer_norm(h, scale, shift):
    mean = jnp.mean(h, axis=-1, keepdims=True)
    variance = jnp.mean((h - mean) ** 2, axis=-1, keepdims=True)
    return (h - mean) * lax.rsqrt(variance + 1e-5) * scale + shift


def residual_mlp(params, x):
    """h = x W_in; for each block h <- h + tanh(LN(h) W + b); then the linear head."""
    h = x @ params["input"]
    for block in params["blocks"]:
        h = h + jnp.tanh(_layer_norm(h, block["scale"], block["shift"]) @ block["w"] + block["b"])
    return h @ params["head"]["w"] + params["head"]["b"]


def residual_init(key, n_in=3, width=6, n_out=2, blocks=2, dtype=jnp.float64):
    keys = jax.random.split(key, blocks + 2)

    def normal(k, shape):
        return (jax.random.normal(k, shape, dtype) / np.sqrt(shape[0])).astype(dtype)

    return {
        "input": normal(keys[0], (n_in, width)),
        "blocks": [
            {
                "w": normal(k, (width, width)),
                "b": jnp.zeros(width, dtype),
                "scale": jnp.ones(width, dtype),
                "shift": jnp.zeros(width, dtype),
            }
            for k in keys[1:-1]
        ],
        "head": {"w": normal(keys[-1], (width, n_out)), "b": jnp.zeros(n_out, dtype)},
    }


def _images(n, seed):
    """6x6 one-channel images; the class is the brightest band of two rows."""
    x = np.random.default_rng(seed).standard_normal((n, 6, 6, 1))
    bands = x[..., 0].reshape(n, 3, 12).sum(axis=-1)
    return jnp.asarray(x), jnp.asarray(np.argmax(bands, axis=-1))


def _regression(n=10, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, 3))
    y = np.stack([np.sin(x[:, 0]) + x[:, 1], x[:, 1] * x[:, 2]], axis=1)
    return jnp.asarray(x), jnp.asarray(y)


X, Y = _images(20, 0)  # batches of 8: two full ones and a padded last batch of 4
VALIDATION = _images(8, 1)
SGD = optim.sgd(0.1)
CNN_SETTINGS = dict(
    model=cnn,
    loss="softmax_cross_entropy",
    optimizer=SGD,
    epochs=4,
    batch_size=8,
    key=jax.random.key(2),
    validation=VALIDATION,
    keep_best="val_loss",
)


def _assert_trees_close(actual, expected, rtol=1e-10, atol=1e-12):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)


def _mean_loss(model, loss):
    loss = fungrad.get_loss(loss)
    return lambda p, x, y: jnp.mean(loss.fn(model(p, x), y))


def _manual_loop(model, loss, params, x, y, *, optimizer, epochs, batch_size, key):
    """fit's documented schedule as a plain loop with jax.grad of each real batch's mean loss
    (the last batch holds only the samples left: no padding, no weights)."""
    value_and_grad = jax.jit(jax.value_and_grad(_mean_loss(model, loss)))
    opt_state = optimizer.init(params)
    n, losses = x.shape[0], []
    for epoch in range(epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
        total = 0.0
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            value, grads = value_and_grad(params, x[batch], y[batch])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            total += float(value) * len(batch)
        losses.append(total / n)
    return params, np.array(losses)


@pytest.fixture(scope="module")
def cnn_run():
    return fungrad.fit(cnn_init(jax.random.key(0)), X, Y, gradients="graph", **CNN_SETTINGS)


# --------------------------------------------------------------------------- training a CNN


@pytest.mark.slow
def test_a_cnn_trains_by_the_graph_engine_like_the_hand_written_loop(cnn_run):
    params, losses = _manual_loop(
        cnn, "softmax_cross_entropy", cnn_init(jax.random.key(0)), X, Y, optimizer=SGD,
        epochs=4, batch_size=8, key=jax.random.key(2),
    )  # fmt: skip
    _assert_trees_close(cnn_run.state.params, params)
    np.testing.assert_allclose(cnn_run.history["loss"], losses, rtol=1e-10)
    assert losses[-1] < losses[0]
    assert set(cnn_run.history) == {
        "loss", "grad_norm", "accuracy", "val_loss", "val_accuracy"
    }  # fmt: skip


@pytest.mark.slow
def test_graph_and_jax_gradients_train_a_cnn_to_the_same_params(cnn_run):
    by_jax = fungrad.fit(cnn_init(jax.random.key(0)), X, Y, gradients="jax", **CNN_SETTINGS)
    _assert_trees_close(by_jax.state.params, cnn_run.state.params)
    for name, values in cnn_run.history.items():
        np.testing.assert_allclose(by_jax.history[name], values, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_the_general_engine_is_the_default_for_a_model(cnn_run):
    configs = []
    default = fungrad.fit(
        cnn_init(jax.random.key(0)), X, Y, checkpoint=lambda c: configs.append(c.config),
        **CNN_SETTINGS,
    )  # fmt: skip
    assert leaves_equal(default.state, cnn_run.state)
    fit_config = configs[-1]["fit"]
    assert fit_config["gradients"] == "graph"
    assert fit_config["model"] == "custom"
    assert fit_config["function"].endswith("test_train_models.cnn")


@pytest.mark.slow
def test_a_second_fit_with_the_same_model_does_not_recompile(cnn_run, count_compilations):
    other_x, other_y = _images(20, 5)
    other_params = cnn_init(jax.random.key(3))
    with count_compilations() as compiled:
        fungrad.fit(other_params, other_x, other_y, gradients="graph", **CNN_SETTINGS)
    assert compiled == []


@pytest.mark.slow
def test_keep_best_returns_the_params_of_the_best_validation_epoch(cnn_run):
    best = int(np.argmin(cnn_run.history["val_loss"])) + 1
    assert cnn_run.best_epoch == best
    kept = fungrad.evaluate(cnn_run.params, *VALIDATION, model=cnn, loss="softmax_cross_entropy")
    assert kept["loss"] == pytest.approx(cnn_run.history["val_loss"][best - 1], rel=1e-12)
    assert kept["accuracy"] == pytest.approx(cnn_run.history["val_accuracy"][best - 1])


@pytest.mark.slow
def test_an_interrupted_cnn_run_resumes_bit_for_bit(cnn_run, tmp_path):
    path = tmp_path / "cnn.npz"

    def stop_after_two(epoch, metrics):
        if epoch == 1:
            raise StopTraining("interrupted")

    start = cnn_init(jax.random.key(0))
    first = fungrad.fit(start, X, Y, checkpoint=path, callback=stop_after_two, **CNN_SETTINGS)
    assert first.epochs_run == 2 and first.stop_reason == "interrupted"
    assert checkpoint.restore(path).config["fit"]["model"] == "custom"
    resumed = fungrad.fit(start, X, Y, initial_state=path, **CNN_SETTINGS)
    assert resumed.epochs_run == 4
    assert leaves_equal(resumed.state, cnn_run.state)
    assert leaves_equal(resumed.params, cnn_run.params)
    assert resumed.best_epoch == cnn_run.best_epoch
    for name, values in cnn_run.history.items():
        np.testing.assert_array_equal(resumed.history[name], values)


@pytest.mark.slow
def test_a_resumed_state_of_another_model_is_refused(cnn_run):
    with pytest.raises(ValueError, match="initial_state: leaf"):
        other = cnn_init(jax.random.key(0))
        other["dense"]["w"] = jnp.zeros((36, 4))
        other["dense"]["b"] = jnp.zeros(4)
        fungrad.fit(other, X, Y % 3, initial_state=cnn_run.state, **CNN_SETTINGS)


# --------------------------------------------------------------------------- restarts


@pytest.mark.slow
def test_cnn_restarts_equal_fit_one_by_one(cnn_run):
    starts = [cnn_init(jax.random.key(0)), cnn_init(jax.random.key(4))]
    result = fungrad.fit_restarts(starts, X, Y, **CNN_SETTINGS)
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *starts)
    again = fungrad.fit_restarts(stacked, X, Y, **CNN_SETTINGS)
    assert leaves_equal(again.params, result.params)
    for r, start in enumerate(starts):
        alone = fungrad.fit(start, X, Y, **{**CNN_SETTINGS, "key": result.keys[r]})
        _assert_trees_close(jax.tree.map(lambda a, r=r: a[r], result.params), alone.params)
        assert int(result.best_epochs[r]) == alone.best_epoch
    best = int(np.argmin([result.history["val_loss"][r, e - 1] for r, e in
                          enumerate(result.best_epochs)]))  # fmt: skip
    assert result.best_index == best


@pytest.mark.slow
def test_one_models_params_start_every_run_of_a_learning_rate_grid(count_compilations):
    params = residual_init(jax.random.key(0))
    x, y = _regression()
    settings = dict(model=residual_mlp, loss="l2", optimizer=optim.sgd, epochs=3)
    result = fungrad.fit_restarts(
        params, x, y, learning_rates=[0.01, 0.03], key=jax.random.key(1), **settings
    )
    assert result.history["loss"].shape == (2, 3)
    assert result.history["loss"][0, 0] == pytest.approx(result.history["loss"][1, 0])
    assert result.history["loss"][1, -1] < result.history["loss"][0, -1]
    key = jax.random.key(2)
    with count_compilations() as compiled:
        fungrad.fit_restarts(params, x, y, learning_rates=[0.02, 0.03], key=key, **settings)
    assert compiled == []
    with pytest.raises(ValueError, match=r"^params: got one model's params"):
        fungrad.fit_restarts(
            params, x, y, model=residual_mlp, loss="l2", optimizer=SGD, epochs=3,
            key=jax.random.key(1),
        )  # fmt: skip


# --------------------------------------------------------------------------- a residual MLP


@pytest.mark.slow
def test_a_residual_mlp_equals_the_manual_loop_with_a_padded_batch():
    params = residual_init(jax.random.key(0))
    x, y = _regression()
    optimizer = optim.momentum(0.05, 0.9)
    settings = dict(optimizer=optimizer, epochs=3, batch_size=4, key=jax.random.key(1))
    result = fungrad.fit(params, x, y, model=residual_mlp, loss="l2", **settings)
    manual, losses = _manual_loop(residual_mlp, "l2", params, x, y, **settings)
    _assert_trees_close(result.params, manual)
    np.testing.assert_allclose(result.history["loss"], losses, rtol=1e-10)
    assert set(result.history) == {"loss", "grad_norm"}


@pytest.mark.slow
def test_stop_conditions_end_each_run_on_its_own():
    x, y = _regression()
    starts = [residual_init(jax.random.key(0)), residual_init(jax.random.key(7))]
    settings = dict(model=residual_mlp, loss="l2", optimizer=SGD, epochs=8, key=jax.random.key(1))
    free = fungrad.fit(starts[0], x, y, **settings)
    threshold = float(free.history["loss"][4])
    first_met = int(np.argmax(free.history["loss"] <= threshold)) + 1
    stop = stopping.target("loss", threshold)
    stopped = fungrad.fit(starts[0], x, y, stop=stop, **settings)
    assert stopped.epochs_run == first_met < 8 and stopped.stop_reason == stop.name
    restarts = fungrad.fit_restarts(starts, x, y, stop=stop, **settings)
    assert restarts.epochs_run[0] == first_met
    other = fungrad.fit(starts[1], x, y, stop=stop, **{**settings, "key": restarts.keys[1]})
    assert restarts.epochs_run[1] == other.epochs_run != first_met
    _assert_trees_close(jax.tree.map(lambda a: a[1], restarts.params), other.params)


@pytest.mark.slow
def test_a_diverging_model_stops_and_keeps_the_last_finite_params():
    x, y = _regression()
    params = residual_init(jax.random.key(0))
    result = fungrad.fit(
        params, x, 1e200 * y, model=residual_mlp, loss="l2", optimizer=optim.gd(1.0),
        epochs=5, key=jax.random.key(1),
    )  # fmt: skip
    assert result.diverged and result.stop_reason.startswith("diverged")
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(result.params))


@pytest.mark.slow
def test_a_bfloat16_model_trains_with_float32_losses_and_statistics():
    x, y = _regression(n=16)
    params = residual_init(jax.random.key(0), dtype=jnp.bfloat16)

    def model(p, x):
        return residual_mlp(p, x.astype(jnp.bfloat16))

    result = fungrad.fit(
        params, x.astype(jnp.float32), y.astype(jnp.float32), model=model, loss="l2",
        optimizer=optim.adam(0.02), epochs=6, batch_size=8, key=jax.random.key(1),
    )  # fmt: skip
    assert result.history["loss"].dtype == np.float32
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert {leaf.dtype for leaf in jax.tree.leaves(result.params)} == {jnp.dtype(jnp.bfloat16)}
    statistics = [leaf for leaf in jax.tree.leaves(result.state.opt_state) if leaf.ndim > 0]
    assert {leaf.dtype for leaf in statistics} == {jnp.dtype(jnp.float32)}


# --------------------------------------------------------------------------- the MLP, by graph


@pytest.mark.slow
def test_an_mlp_trains_by_the_graph_engine_like_by_backprop():
    x, y = _regression(n=12)
    params = mlp.init(jax.random.key(0), [3, 5, 2], dtype=jnp.float64, activation="tanh")
    settings = dict(loss="l2", optimizer=SGD, epochs=3, batch_size=5, key=jax.random.key(1))
    by_backprop = fungrad.fit(params, x, y, activation="tanh", **settings)
    by_graph = fungrad.fit(params, x, y, activation="tanh", gradients="graph", **settings)
    _assert_trees_close(by_graph.params, by_backprop.params)
    np.testing.assert_allclose(by_graph.history["loss"], by_backprop.history["loss"], rtol=1e-10)


def test_autodiff_is_an_alias_of_jax():
    from fungrad.train import sources

    by_alias = sources.resolve("l2", gradients="autodiff")
    assert by_alias is sources.resolve("l2", gradients="jax")
    assert sources.resolve("l2", model=cnn, gradients="autodiff") is sources.resolve(
        "l2", model=cnn, gradients="jax"
    )
    assert hash(by_alias) == hash(sources.resolve("l2", gradients="jax"))


# --------------------------------------------------------------------------- evaluate


@pytest.mark.slow
def test_evaluate_a_model_is_its_mean_loss_and_accuracy():
    params = cnn_init(jax.random.key(0))
    x, y = VALIDATION
    result = fungrad.evaluate(params, x, y, model=cnn, loss="softmax_cross_entropy")
    logits = cnn(params, x)
    expected = jnp.mean(jax.nn.logsumexp(logits, -1) - logits[jnp.arange(8), y])
    assert result["loss"] == pytest.approx(float(expected), rel=1e-12)
    assert result["accuracy"] == pytest.approx(float(jnp.mean(jnp.argmax(logits, -1) == y)))


# --------------------------------------------------------------------------- bad input


def _bad_fit(**overrides):
    kwargs = dict(
        params=cnn_init(jax.random.key(0)), x=X, y=Y, model=cnn, loss="softmax_cross_entropy",
        optimizer=SGD, epochs=2, key=jax.random.key(1),
    )  # fmt: skip
    kwargs.update(overrides)
    return fungrad.fit(**kwargs)


def _vector_output(params, x):
    return cnn(params, x)[:, 0]


class _Unhashable:
    __hash__ = None

    def __call__(self, params, x):
        return cnn(params, x)


@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        ({"gradients": "backprop"}, ValueError, r"^gradients: 'backprop' is the MLP engine"),
        ({"gradients": "numeric"}, ValueError, r"^gradients:.*'graph'.*'jax'.*autodiff"),
        ({"activation": "tanh"}, ValueError, r"^activation: applies to the MLP only"),
        ({"output_activation": "sigmoid"}, ValueError, r"^output_activation:"),
        ({"gradients": lambda p, x, y: (0.0, p)}, ValueError, r"^model:.*callable"),
        ({"model": "cnn"}, TypeError, r"^model: expected a pure function"),
        ({"model": _Unhashable()}, TypeError, r"^model: expected a hashable"),
        ({"model": _vector_output}, ValueError, r"^model: expected one output row"),
        ({"x": jnp.ones((20, 6, 6, 2))}, ValueError, r"^model: could not be applied.*x"),
        ({"y": jnp.ones((20, 4)) / 4}, ValueError, r"^y: expected.*\(20, 3\)"),
        ({"y": Y.at[3].set(3)}, ValueError, r"^y: class labels must lie in \[0, 3\)"),
        ({"y": Y[:19]}, ValueError, r"^y:"),
        ({"validation": (X[:4], jnp.ones((4, 2)))}, ValueError, r"^validation\[1\]:"),
        ({"params": {"w": jnp.ones(3, int)}}, TypeError, r"^params"),
    ],
    ids=lambda value: None if isinstance(value, (dict, type, str)) else str(value),
)
@pytest.mark.slow
def test_bad_input_is_an_error_naming_the_argument(overrides, error, pattern):
    with pytest.raises(error, match=pattern):
        _bad_fit(**overrides)


@pytest.mark.slow
def test_evaluate_refuses_activations_with_a_model():
    with pytest.raises(ValueError, match=r"^activation:"):
        fungrad.evaluate(
            cnn_init(jax.random.key(0)), X, Y, model=cnn, loss="softmax_cross_entropy",
            activation="relu",
        )  # fmt: skip


@pytest.mark.slow
def test_restarts_refuse_backprop_for_a_model():
    with pytest.raises(ValueError, match=r"^gradients:"):
        fungrad.fit_restarts(
            [cnn_init(jax.random.key(0))] * 2, X, Y, model=cnn, gradients="backprop",
            loss="softmax_cross_entropy", optimizer=SGD, epochs=2, key=jax.random.key(1),
        )  # fmt: skip


# A CNN on device meshes (data-parallel, runs spread, both at once, Auto and Explicit axes)
# is tested with the MLP in tests/test_parallel_explicit.py, in one forced-devices process.

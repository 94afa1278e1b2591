"""MLP parameters and forward pass: layout, initial scale, shapes, dtypes and bad input."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fungrad
from fungrad import backprop, mlp

SIZES = [3, 5, 4, 2]


def _numpy_forward(params, x, hidden, output):
    a = np.asarray(x)
    for i, layer in enumerate(params):
        z = a @ np.asarray(layer["w"]) + np.asarray(layer["b"])
        a = output(z) if i == len(params) - 1 else hidden(z)
    return a


# --------------------------------------------------------------------------- init


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_init_layout_shapes_and_dtypes(dtype):
    params = mlp.init(jax.random.key(0), SIZES, dtype=dtype)
    assert isinstance(params, list) and len(params) == 3
    for layer, n_in, n_out in zip(params, SIZES[:-1], SIZES[1:], strict=True):
        assert set(layer) == {"w", "b"}
        assert layer["w"].shape == (n_in, n_out) and layer["b"].shape == (n_out,)
        assert layer["w"].dtype == layer["b"].dtype == dtype
        np.testing.assert_array_equal(layer["b"], 0)
    assert mlp.layer_sizes(params) == SIZES


@pytest.mark.slow
def test_init_default_dtype_is_float32():
    params = mlp.init(jax.random.key(0), SIZES)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))


@pytest.mark.slow
def test_init_is_deterministic_in_the_key():
    a, b = mlp.init(jax.random.key(1), SIZES), mlp.init(jax.random.key(1), SIZES)
    c = mlp.init(jax.random.key(2), SIZES)
    np.testing.assert_array_equal(a[0]["w"], b[0]["w"])
    assert not np.allclose(a[0]["w"], c[0]["w"])
    # Each layer draws from its own key.
    assert not np.allclose(a[0]["w"][:3, :4], a[1]["w"][:3, :4])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("activation", "expected_std"),
    [
        ("relu", np.sqrt(2 / 1000)),  # He: Var(w) = 2 / n_in
        ("gelu", np.sqrt(2 / 1000)),
        ("tanh", np.sqrt(2 / (1000 + 250))),  # Glorot: Var(w) = 2 / (n_in + n_out)
        ("sigmoid", np.sqrt(2 / (1000 + 250))),
    ],
)
def test_init_scale_follows_the_activation(activation, expected_std):
    (layer,) = mlp.init(jax.random.key(3), [1000, 250], dtype=jnp.float64, activation=activation)
    w = np.asarray(layer["w"])
    # 250_000 draws: the sample std is within 0.5% of the true one; He and Glorot differ by 11%.
    assert abs(w.std() / expected_std - 1) < 0.02
    assert abs(w.mean()) < 0.01 * expected_std


def test_default_init_is_he_for_relu():
    (layer,) = mlp.init(jax.random.key(4), [1000, 250], dtype=jnp.float64)
    assert abs(np.asarray(layer["w"]).std() / np.sqrt(2 / 1000) - 1) < 0.02


def test_custom_weight_init_is_used():
    calls = []

    def constant_init(key, shape, dtype):
        calls.append((shape, jnp.dtype(dtype)))
        return jnp.full(shape, 0.5, dtype)

    params = mlp.init(jax.random.key(0), SIZES, dtype=jnp.float64, weight_init=constant_init)
    assert calls == [((3, 5), jnp.float64), ((5, 4), jnp.float64), ((4, 2), jnp.float64)]
    for layer in params:
        np.testing.assert_array_equal(layer["w"], 0.5)
        np.testing.assert_array_equal(layer["b"], 0.0)


def test_jax_initializer_can_be_given():
    params = mlp.init(
        jax.random.key(0), SIZES, weight_init=jax.nn.initializers.constant(-2.0), dtype=jnp.float32
    )
    assert params[1]["w"].dtype == jnp.float32
    np.testing.assert_array_equal(params[1]["w"], -2.0)


@pytest.mark.parametrize(
    "sizes",
    [[], [3], [3, 0], [3, -2, 1], [3, 2.0], [3, None]],
    ids=["empty", "one", "zero", "negative", "float", "none"],
)
def test_init_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match=r"sizes: expected at least two positive integers"):
        mlp.init(jax.random.key(0), sizes)


# --------------------------------------------------------------------------- apply


def _params(dtype=np.float64, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "w": jnp.asarray(rng.normal(size=(n_in, n_out)), dtype),
            "b": jnp.asarray(rng.normal(size=n_out), dtype),
        }
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def test_apply_computes_the_layer_recurrence():
    params = _params()
    x = np.random.default_rng(1).normal(size=(7, 3))
    got = jax.jit(functools.partial(mlp.apply, activation="tanh", output_activation="sigmoid"))(
        params, x
    )
    want = _numpy_forward(params, x, np.tanh, lambda z: 1 / (1 + np.exp(-z)))
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("apply", [mlp.apply, backprop.apply], ids=["mlp", "backprop"])
def test_apply_one_sample_equals_the_batch_row(apply):
    params = _params()
    x = np.random.default_rng(2).normal(size=(4, 3))
    run = jax.jit(functools.partial(apply, activation="relu"))
    batch = run(params, x)
    assert batch.shape == (4, 2)
    for i in range(4):
        one = run(params, x[i])
        assert one.shape == (2,)
        np.testing.assert_allclose(one, batch[i], rtol=1e-14)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("param_dtype", "x_dtype", "expected"),
    [
        (jnp.float32, jnp.float32, jnp.float32),
        (jnp.float64, jnp.float64, jnp.float64),
        (jnp.float32, jnp.int32, jnp.float32),
        (jnp.float64, jnp.int32, jnp.float64),
    ],
)
def test_apply_dtype_follows_the_inputs(param_dtype, x_dtype, expected):
    params = _params(param_dtype)
    x = jnp.ones((2, 3), x_dtype)
    assert mlp.apply(params, x).dtype == expected
    assert backprop.apply(params, x).dtype == expected


def test_apply_accepts_a_tuple_of_layers():
    params = _params()
    x = np.ones((2, 3))
    np.testing.assert_allclose(mlp.apply(tuple(params), x), mlp.apply(params, x), rtol=1e-15)


# --------------------------------------------------------------------------- bad input

ENTRY_POINTS = {
    "mlp.apply": lambda params, x: mlp.apply(params, x),
    "backprop.apply": lambda params, x: backprop.apply(params, x),
    "value_and_grad": lambda params, x: fungrad.value_and_grad(params, x, np.zeros((2, 2))),
    "per_sample": lambda params, x: fungrad.per_sample_value_and_grad(params, x, np.zeros((2, 2))),
}


def _broken(kind):
    params = _params()
    if kind == "not_a_list":
        return {"w": params[0]["w"], "b": params[0]["b"]}
    if kind == "empty":
        return []
    if kind == "missing_key":
        params[0] = {"w": params[0]["w"]}
    elif kind == "extra_key":
        params[0] = {**params[0], "gamma": 1.0}
    elif kind == "not_a_dict":
        params[1] = (params[1]["w"], params[1]["b"])
    elif kind == "w_1d":
        params[0]["w"] = params[0]["w"][:, 0]
    elif kind == "b_mismatch":
        params[1]["b"] = params[1]["b"][:3]
    elif kind == "chain_mismatch":
        params[1] = {"w": params[1]["w"][:4], "b": params[1]["b"]}
    return params


BROKEN = [
    ("not_a_list", TypeError, r"params: expected a non-empty list of \{'w', 'b'\} dicts, got dict"),
    ("empty", TypeError, r"params: expected a non-empty list"),
    ("missing_key", TypeError, r"params\[0\]: expected a dict with keys 'w' and 'b', got \['w'\]"),
    ("extra_key", TypeError, r"params\[0\]: expected a dict with keys 'w' and 'b'"),
    ("not_a_dict", TypeError, r"params\[1\]: expected a dict with keys 'w' and 'b', got tuple"),
    ("w_1d", ValueError, r"params\[0\]\['w'\]: expected a 2-D \(n_in, n_out\) array, got \(3,\)"),
    ("b_mismatch", ValueError, r"params\[1\]\['b'\]: expected shape \(4,\), got \(3,\)"),
    ("chain_mismatch", ValueError, r"params\[1\]\['w'\]: expected 5 rows .* got shape \(4, 4\)"),
]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(("kind", "error", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_params_not_in_the_layout_are_rejected(entry, kind, error, message):
    with pytest.raises(error, match=message):
        ENTRY_POINTS[entry](_broken(kind), np.ones((2, 3)))


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("shape", [(2, 4), (4,), (2, 3, 1), ()], ids=str)
def test_input_of_the_wrong_shape_is_rejected(entry, shape):
    with pytest.raises(ValueError, match=r"x: expected shape \(3,\) or \(batch, 3\) .* got"):
        ENTRY_POINTS[entry](_params(), np.ones(shape))


@pytest.mark.parametrize("apply", [mlp.apply, backprop.apply], ids=["mlp", "backprop"])
def test_unknown_activation_names_are_rejected(apply):
    params, x = _params(), np.ones((2, 3))
    with pytest.raises(ValueError, match=r"activation: unknown activation 'swishy'; expected one"):
        apply(params, x, activation="swishy")
    with pytest.raises(ValueError, match=r"output_activation: unknown activation 'soft'"):
        apply(params, x, output_activation="soft")

"""Argument validators, and the public entry points that use them: NumPy and JAX scalars are
accepted wherever a Python number is; bools, floats for counts, NaN and strings are refused
with a message naming the argument."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fungrad
from fungrad import _checks, mlp, optim, stopping
from fungrad._checks import ArgumentTypeError

# --------------------------------------------------------------------------- positive_int


@pytest.mark.parametrize(
    "value",
    [3, np.int64(3), np.int32(3), np.uint8(3), np.array(3), jnp.asarray(3), jnp.int16(3)],
    ids=["int", "np.int64", "np.int32", "np.uint8", "np-0d", "jax-0d", "jnp.int16"],
)
def test_positive_int_accepts_integer_scalars(value):
    result = _checks.positive_int("n", value)
    assert result == 3 and type(result) is int


@pytest.mark.parametrize(
    "value",
    [True, np.bool_(True), 2.0, np.float64(2.0), jnp.asarray(2.0), "3", None, np.array([3]), 1j],
    ids=["bool", "np.bool", "float", "np.float64", "jax-float", "str", "None", "1-d", "complex"],
)
def test_positive_int_refuses_non_integers_with_a_type_error(value):
    with pytest.raises(ArgumentTypeError, match=r"^n: expected a positive integer, got"):
        _checks.positive_int("n", value)
    # A TypeError, and a ValueError for code that catches that.
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)


@pytest.mark.parametrize("value", [0, -1, np.int64(0), jnp.asarray(-2)])
def test_positive_int_refuses_integers_below_one(value):
    with pytest.raises(ValueError, match=r"^n: expected a positive integer, got -?\d") as info:
        _checks.positive_int("n", value)
    assert not isinstance(info.value, TypeError)


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2, 2.0), (0.5, 0.5), (np.float32(0.5), 0.5), (jnp.asarray(0.25), 0.25), (np.int64(-3), -3)],
)
def test_finite_number_accepts_real_scalars(value, expected):
    result = _checks.finite_number("tol", value)
    assert result == expected and type(result) is float


@pytest.mark.parametrize("value", [True, "1", None, 1j, np.array([1.0]), [1.0]], ids=str)
def test_finite_number_refuses_non_numbers_with_a_type_error(value):
    with pytest.raises(ArgumentTypeError, match=r"^tol: expected a finite number, got"):
        _checks.finite_number("tol", value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float32(np.nan)], ids=str)
def test_finite_number_refuses_nan_and_infinities(value):
    with pytest.raises(ValueError, match=r"^tol: expected a finite number, got (nan|-?inf)"):
        _checks.finite_number("tol", value)


def test_finite_number_minimum_and_non_negative_number():
    assert _checks.finite_number("x", 1, minimum=1) == 1.0
    with pytest.raises(ValueError, match=r"^x: expected a number >= 1, got 0.5"):
        _checks.finite_number("x", 0.5, minimum=1)
    assert _checks.non_negative_number("min_delta", np.float64(0.0)) == 0.0
    with pytest.raises(ValueError, match=r"^min_delta: expected a number >= 0, got -0.1"):
        _checks.non_negative_number("min_delta", -0.1)


def test_fraction():
    assert [_checks.fraction("f", v) for v in (0, 0.5, 1, np.float32(0.25))] == [0, 0.5, 1, 0.25]
    assert _checks.fraction("beta", 0.9, include_one=False) == 0.9
    for bad in (-0.1, 1.5, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"^f: expected a number in \[0, 1\], got"):
            _checks.fraction("f", bad)
    with pytest.raises(ValueError, match=r"^beta: expected a number in \[0, 1\), got 1"):
        _checks.fraction("beta", 1.0, include_one=False)
    with pytest.raises(ArgumentTypeError, match=r"^f: expected a number in \[0, 1\], got 'x'"):
        _checks.fraction("f", "x")


def test_one_of():
    assert _checks.one_of("mode", "max", ("min", "max")) == "max"
    assert _checks.one_of("n", 1, (1, 2)) == 1
    with pytest.raises(ValueError, match=r"^mode: expected one of 'min', 'max', got 'up'"):
        _checks.one_of("mode", "up", ("min", "max"))
    with pytest.raises(ValueError, match=r"^n: expected one of 1, 2, got True"):
        _checks.one_of("n", True, (1, 2))
    with pytest.raises(ValueError, match=r"^n: expected one of 1, 2, got array"):
        _checks.one_of("n", np.array([1, 2]), (1, 2))


# --------------------------------------------------------------------------- entry points


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4))
    return x, x @ rng.normal(size=(4, 1))


def _fit(**overrides):
    x, y = _data()
    kwargs = dict(
        params=mlp.init(jax.random.key(0), [4, 3, 1], dtype=jnp.float64),
        x=x,
        y=y,
        loss="l2",
        optimizer=optim.sgd(0.05),
        epochs=2,
        key=jax.random.key(1),
    )
    kwargs.update(overrides)
    return fungrad.fit(**kwargs)


@pytest.mark.parametrize(
    ("epochs", "batch_size"),
    [(np.int64(3), np.int32(16)), (jnp.asarray(3), jnp.asarray(8)), (np.uint16(3), None)],
    ids=["numpy", "jax", "unsigned"],
)
@pytest.mark.slow
def test_fit_accepts_numpy_and_jax_integers(epochs, batch_size):
    result = _fit(epochs=epochs, batch_size=batch_size)
    plain = _fit(epochs=3, batch_size=None if batch_size is None else int(batch_size))
    assert result.epochs_run == 3 == len(result.history["loss"])
    np.testing.assert_array_equal(result.history["loss"], plain.history["loss"])


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"epochs": True}, r"^epochs: expected a positive integer, got True"),
        ({"epochs": 3.0}, r"^epochs: expected a positive integer, got 3.0"),
        ({"epochs": np.float64(3)}, r"^epochs: expected a positive integer"),
        ({"batch_size": True}, r"^batch_size: expected a positive integer, got True"),
        ({"batch_size": 16.0}, r"^batch_size: expected a positive integer, got 16.0"),
        ({"batch_size": np.int64(0)}, r"^batch_size: expected a positive integer, got 0"),
        ({"batch_size": np.int64(33)}, r"^batch_size: expected None or an integer in \[1, 32\]"),
    ],
    ids=str,
)
def test_fit_refuses_bools_floats_and_out_of_range_counts(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        _fit(**overrides)


def test_mlp_init_accepts_numpy_and_jax_layer_sizes():
    params = mlp.init(jax.random.key(0), [np.int64(4), jnp.asarray(5), np.int32(3)])
    assert [p["w"].shape for p in params] == [(4, 5), (5, 3)]
    assert mlp.layer_sizes(params) == [4, 5, 3]
    assert all(type(n) is int for n in mlp.layer_sizes(params))


@pytest.mark.parametrize(
    ("sizes", "error", "detail"),
    [
        ([4, True], ArgumentTypeError, r"sizes\[1\]: expected a positive integer, got True"),
        ([4.0, 3], ArgumentTypeError, r"sizes\[0\]: expected a positive integer, got 4.0"),
        ([4, np.int64(0)], ValueError, r"sizes\[1\]: expected a positive integer, got 0"),
    ],
    ids=["bool", "float", "zero"],
)
def test_mlp_init_names_the_bad_layer_size(sizes, error, detail):
    with pytest.raises(error, match=r"^sizes: expected at least two positive integers.*" + detail):
        mlp.init(jax.random.key(0), sizes)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"key": 0}, r"^key: expected one PRNG key such as jax.random.key\(0\), got 0"),
        ({"key": jax.random.split(jax.random.key(0), 2)}, r"^key: .* of shape \(2,\)"),
        ({"dtype": jnp.int32}, r"^dtype: expected a floating dtype"),
        ({"dtype": "int8"}, r"^dtype: expected a floating dtype .* got 'int8'"),
        ({"dtype": "floaty"}, r"^dtype: expected a floating dtype .* got 'floaty'"),
    ],
    ids=["int-key", "two-keys", "int-dtype", "int-name", "unknown-name"],
)
def test_mlp_init_checks_key_and_dtype(kwargs, pattern):
    arguments = {"key": jax.random.key(0), "sizes": [2, 3]} | kwargs
    with pytest.raises(TypeError, match=pattern):
        mlp.init(**arguments)


def test_mlp_init_accepts_a_raw_uint32_key():
    params = mlp.init(jax.random.PRNGKey(0), [2, 3])
    assert params[0]["w"].shape == (2, 3)


def test_stop_factories_accept_numpy_and_jax_scalars_and_cache_on_the_plain_value():
    assert stopping.max_epochs(np.int64(3)) is stopping.max_epochs(3)
    assert stopping.no_improvement("val_loss", np.int32(2)) is stopping.no_improvement(
        "val_loss", 2
    )
    assert stopping.plateau("loss", tol=np.float32(0.5), patience=jnp.asarray(4)) is (
        stopping.plateau("loss", tol=0.5, patience=4)
    )
    assert stopping.target("loss", jnp.asarray(0.25)) is stopping.target("loss", 0.25)
    assert stopping.grad_norm_below(np.float64(1e-3)).name == "grad_norm_below(0.001)"


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: stopping.no_improvement("val_loss", True), r"^patience: expected a positive"),
        (lambda: stopping.no_improvement("val_loss", 2.0), r"^patience: expected a positive"),
        (lambda: stopping.plateau(patience=np.float64(3)), r"^patience: expected a positive"),
        (lambda: stopping.max_epochs(np.bool_(True)), r"^n: expected a positive integer"),
        (lambda: stopping.target("loss", np.nan), r"^threshold: expected a finite number"),
        (lambda: stopping.plateau(tol=True), r"^tol: expected a finite number"),
    ],
    ids=["patience-bool", "patience-float", "patience-np-float", "n-np-bool", "nan", "tol"],
)
def test_stop_factories_refuse_bools_and_floats_naming_the_argument(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_optimizers_accept_numpy_and_jax_scalars():
    optim.momentum(np.float32(0.1), np.float64(0.9))
    optim.adam(jnp.asarray(1e-3), b1=np.float32(0.9), eps=np.float64(1e-8))
    optim.from_name("nesterov", np.float64(0.1), beta=jnp.asarray(0.5))


@pytest.mark.parametrize(
    ("make", "error", "pattern"),
    [
        (lambda: optim.sgd(True), TypeError, r"^learning_rate: expected a positive number"),
        (lambda: optim.momentum(0.1, True), TypeError, r"^beta: expected a number in \[0, 1\)"),
        (lambda: optim.momentum(0.1, 1.0), ValueError, r"^beta: expected a number in \[0, 1\)"),
        (lambda: optim.adam(0.1, eps=True), TypeError, r"^eps: expected a finite number"),
        (lambda: optim.adam(0.1, eps=math.nan), ValueError, r"^eps: expected a finite number"),
        (lambda: optim.momentum(0.1, variant="polyak"), ValueError, r"^variant: expected one of"),
        (lambda: optim.from_name("rmsprop", 0.1), ValueError, r"^name: expected one of 'gd'"),
    ],
    ids=["lr-bool", "beta-bool", "beta-one", "eps-bool", "eps-nan", "variant", "name"],
)
def test_optimizers_refuse_bad_hyperparameters_naming_them(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


@pytest.mark.parametrize("where", ["x", "y"])
def test_non_finite_training_data_name_the_array_count_and_first_row(where):
    import fungrad
    from fungrad import mlp, optim

    x = np.ones((6, 2), np.float32)
    y = np.ones((6, 1), np.float32)
    (x if where == "x" else y)[[3, 5], 0] = [np.nan, np.inf]
    with pytest.raises(
        ValueError,
        match=rf"^{where}: 2 values are NaN or infinite \(in 2 rows\); the first in row 3$",
    ):
        fungrad.fit(
            mlp.init(jax.random.key(0), [2, 1]), x, y, loss="l2", optimizer=optim.gd(0.1),
            epochs=1, key=jax.random.key(1),
        )  # fmt: skip

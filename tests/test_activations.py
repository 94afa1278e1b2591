"""Activations: values against ``jax.nn``, hand-written derivatives against ``jax.grad``."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fungrad
from fungrad import activations, backprop

BUILTIN = activations.activation_names()

REFERENCES = {
    "identity": lambda z: z,
    "relu": jax.nn.relu,
    "leaky_relu": lambda z: jax.nn.leaky_relu(z, negative_slope=0.01),
    "elu": jax.nn.elu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
}

_counter = itertools.count()


def _fresh_name(stem: str) -> str:
    # The registry is global to the process: each registration needs a name of its own.
    return f"{stem}_{next(_counter)}"


def _points(dtype=jnp.float64) -> jax.Array:
    """Points across [-6, 6], none within 1e-3 of the kink at 0."""
    z = jnp.linspace(-6.0, 6.0, 401, dtype=dtype)
    return z[jnp.abs(z) > 1e-3]


def test_builtin_names():
    assert set(BUILTIN) == set(REFERENCES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_value_and_derivative_match_jax(name):
    act, reference = activations.get_activation(name), REFERENCES[name]

    # One compiled program per activation: eager dispatch would compile every primitive.
    @jax.jit
    def evaluate(z):
        return act.fn(z), reference(z), act.derivative(z), jax.vmap(jax.grad(reference))(z)

    value, want_value, derivative, want_derivative = evaluate(_points())
    np.testing.assert_allclose(value, want_value, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(derivative, want_derivative, rtol=1e-12, atol=1e-15)

    value, want_value, derivative, want_derivative = evaluate(_points(jnp.float32))
    assert value.dtype == derivative.dtype == jnp.float32
    np.testing.assert_allclose(value, want_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(derivative, want_derivative, rtol=1e-5, atol=1e-6)

    huge = jnp.array([-1e4, -50.0, 50.0, 1e4])
    value, _, derivative, _ = evaluate(huge)
    assert jnp.all(jnp.isfinite(value)) and jnp.all(jnp.isfinite(derivative))


def test_relu_derivative_at_zero_is_zero():
    relu = activations.get_activation("relu")
    assert float(relu.derivative(jnp.array(0.0))) == 0.0
    assert float(jax.grad(jax.nn.relu)(0.0)) == 0.0


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_vjp_inner_product_identity(name):
    """``<t, J^T c> == <J t, c>`` with ``J t`` from ``jax.jvp`` on the forward function."""
    act = activations.get_activation(name)
    rng = np.random.default_rng(7)
    z = 2 * rng.normal(size=(6, 5))
    z = np.where(np.abs(z) < 1e-2, 0.5, z)
    t, c = rng.normal(size=z.shape), rng.normal(size=z.shape)
    jt, jtc = jax.jit(
        lambda z, t, c: (jax.jvp(act.fn, (z,), (t,))[1], backprop.activation_vjp(act, z, c))
    )(z, t, c)
    assert jtc.shape == z.shape
    np.testing.assert_allclose(jnp.vdot(t, jtc), jnp.vdot(jt, c), rtol=1e-12)


def _swish(z):
    return z * jax.nn.sigmoid(z)


def _swish_derivative(z):
    s = jax.nn.sigmoid(z)
    return s + z * s * (1 - s)


def _objective_through_jax(params, x, y, activation_fn):
    a = x
    for i, layer in enumerate(params):
        z = a @ layer["w"] + layer["b"]
        a = z if i == len(params) - 1 else activation_fn(z)
    return jnp.mean(jnp.sum((a - y) ** 2, axis=-1))


def _problem():
    rng = np.random.default_rng(0)
    sizes = [3, 7, 5, 2]
    params = [
        {"w": rng.normal(size=(n_in, n_out)) / np.sqrt(n_in), "b": rng.normal(size=n_out)}
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return params, rng.normal(size=(6, 3)), rng.normal(size=(6, 2))


def _compare_with_jax(params, x, y, activation, activation_fn):
    @jax.jit
    def both(params, x, y):
        hand = fungrad.value_and_grad(params, x, y, activation=activation, loss="l2")
        oracle = jax.value_and_grad(_objective_through_jax)(params, x, y, activation_fn)
        return hand, oracle

    return both(params, x, y)


def test_custom_activation_object_in_value_and_grad():
    params, x, y = _problem()
    swish = fungrad.Activation("swish", _swish, _swish_derivative)
    (value, grads), (want_value, want_grads) = _compare_with_jax(params, x, y, swish, _swish)
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_registered_activation_by_name_in_value_and_grad():
    params, x, y = _problem()
    name = _fresh_name("swish_registered")
    registered = fungrad.register_activation(name, _swish, _swish_derivative)
    assert activations.get_activation(name) is registered
    assert name in activations.activation_names()
    (value, grads), (want_value, want_grads) = _compare_with_jax(params, x, y, name, _swish)
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


def test_engine_uses_the_registered_derivative():
    """A deliberately wrong derivative must change the gradient: the engine reads ``f'``."""
    params, x, y = _problem()
    wrong = fungrad.Activation("wrong", jnp.tanh, lambda z: 2 * (1 - jnp.tanh(z) ** 2))
    (_, grads), (_, want) = _compare_with_jax(params, x, y, wrong, jnp.tanh)
    assert not np.allclose(grads[0]["w"], want[0]["w"], rtol=1e-3)


def test_register_duplicate_name_raises():
    name = _fresh_name("duplicate")
    fungrad.register_activation(name, _swish, _swish_derivative)
    with pytest.raises(ValueError, match=f"name: activation '{name}' is already registered"):
        fungrad.register_activation(name, _swish, _swish_derivative)


def test_register_cannot_shadow_builtin():
    with pytest.raises(ValueError, match="'relu' is already registered"):
        fungrad.register_activation("relu", _swish, _swish_derivative)
    assert activations.get_activation("relu").fn is not _swish


def test_register_rejects_non_callables_and_bad_names():
    with pytest.raises(TypeError, match="derivative: expected a callable"):
        fungrad.register_activation(_fresh_name("bad"), _swish, 3.0)
    with pytest.raises(TypeError, match="fn: expected a callable"):
        fungrad.register_activation(_fresh_name("bad"), None, _swish_derivative)
    with pytest.raises(TypeError, match="name: expected a non-empty string"):
        fungrad.register_activation("", _swish, _swish_derivative)


def test_unknown_activation_name_lists_valid_names():
    with pytest.raises(ValueError, match="activation: unknown activation 'relux'") as info:
        activations.get_activation("relux")
    for name in BUILTIN:
        assert name in str(info.value)


def test_activation_of_wrong_type_raises():
    with pytest.raises(TypeError, match="activation: expected an activation name"):
        activations.get_activation(3)

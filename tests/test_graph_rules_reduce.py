"""The reduction, cumulative and pooling VJP rules of ``fungrad.graph``.

Each rule is checked by the inner-product identity against ``jax.jvp`` in float64, ties
and zeros are compared with ``jax.grad`` where JAX's convention is defined, and the engine
is compared with ``jax.grad`` through pooling layers, to first and second order.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from test_graph_rules_structure import assert_rule_transposes

from fungrad import graph
from fungrad.graph import registry


def _normal(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


X = _normal(3, 4, 5)
WITH_ZEROS = X.at[1, 2, 0].set(0.0).at[0, :, 1].set(0.0).at[2, 1:3, 3].set(0.0)

REDUCTIONS = {
    "sum_two_axes": lambda x: x.sum((0, 2)),
    "sum_all": jnp.sum,
    "max": lambda x: x.max(1),
    "min_all": jnp.min,
    "prod": lambda x: jnp.prod(x, (0, 2)),
    "prod_last": lambda x: jnp.prod(x, 2),
    "cumsum": lambda x: jnp.cumsum(x, 1),
    "cumsum_reverse": lambda x: lax.cumsum(x, 2, reverse=True),
    "cumprod": lambda x: jnp.cumprod(x, 1),
    "cumprod_reverse": lambda x: lax.cumprod(x, 2, reverse=True),
    "cummax": lambda x: lax.cummax(x, 1),
    "cummax_reverse": lambda x: lax.cummax(x, 2, reverse=True),
    "cummin": lambda x: lax.cummin(x, 0),
    "cummin_reverse": lambda x: lax.cummin(x, 1, reverse=True),
    "top_k": lambda x: lax.top_k(x, 3),
    "top_k_inner_axis": lambda x: lax.top_k(x, 2, axis=1),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction_rule_transposes(name):
    assert_rule_transposes(REDUCTIONS[name], X)


@pytest.mark.parametrize("name", ["prod", "prod_last", "cumprod", "cumprod_reverse"])
@pytest.mark.slow
def test_products_with_zeros_match_jax(name):
    f = REDUCTIONS[name]
    assert_rule_transposes(f, WITH_ZEROS)
    weights = _normal(*f(X).shape, seed=3)
    expected = jax.jit(jax.grad(lambda x: jnp.sum(f(x) * weights)))(WITH_ZEROS)
    mine = jax.jit(graph.grad(lambda x: jnp.sum(f(x) * weights)))(WITH_ZEROS)
    np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("f", [lambda x: x.max(1), jnp.min, lambda x: jnp.max(x, 0)])
@pytest.mark.slow
def test_max_and_min_split_ties_evenly_like_jax(f):
    ties = jnp.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, -1.0], [-1.0, 0.0, -1.0, -1.0]])
    weights = _normal(*f(ties).shape, seed=1)
    expected = jax.grad(lambda x: jnp.sum(f(x) * weights))(ties)
    np.testing.assert_allclose(
        graph.grad(lambda x: jnp.sum(f(x) * weights))(ties), expected, rtol=1e-12
    )


@pytest.mark.slow
def test_cummax_gives_each_cotangent_to_the_first_position_of_the_running_maximum():
    x = jnp.array([1.0, 3.0, 3.0, 2.0, 3.0, 5.0, 5.0])
    d = graph.grad(lambda x: jnp.sum(lax.cummax(x, 0) * jnp.arange(1.0, 8.0)))(x)
    # outputs 1 | 2..5 (maximum 3, first at position 1) | 6, 7 (maximum 5, first at 5)
    np.testing.assert_array_equal(d, [1.0, 14.0, 0.0, 0.0, 0.0, 13.0, 0.0])


def test_argmax_has_no_cotangent():
    (eqn,) = jax.make_jaxpr(lambda x: jnp.argmax(x, 1))(X).eqns
    assert registry.rule_for(eqn.primitive)(None, None, X, **eqn.params) == (None,)


# (window dimensions, strides, padding, base dilation, window dilation) over NHWC
WINDOWS = {
    "pool_2x2": ((1, 2, 2, 1), (1, 2, 2, 1), "VALID", None, None),
    "overlapping_same": ((1, 3, 3, 1), (1, 2, 2, 1), "SAME", None, None),
    "explicit_base_dilation": (
        (1, 3, 2, 1),
        (1, 1, 2, 1),
        ((0, 0), (1, 2), (0, 1), (0, 0)),
        (1, 2, 1, 1),
        None,
    ),
    "window_dilation": ((1, 2, 2, 1), (1, 1, 1, 1), "VALID", None, (1, 2, 2, 1)),
    "everything": (
        (1, 2, 3, 1),
        (1, 3, 2, 1),
        ((0, 0), (2, 1), (1, 1), (0, 0)),
        (1, 1, 2, 1),
        (1, 2, 1, 1),
    ),
    "batch_and_channel_windows": ((2, 2, 1, 2), (1, 2, 1, 1), "VALID", None, None),
}
MONOIDS = {"sum": (lax.add, 0.0), "max": (lax.max, -jnp.inf), "min": (lax.min, jnp.inf)}


def _pool(window, monoid):
    dimensions, strides, padding, base_dilation, window_dilation = WINDOWS[window]
    op, init = MONOIDS[monoid]
    return lambda x: lax.reduce_window(
        x, init, op, dimensions, strides, padding, base_dilation, window_dilation
    )


IMAGES = _normal(2, 7, 6, 3)


@pytest.mark.parametrize("monoid", sorted(MONOIDS))
@pytest.mark.parametrize("window", sorted(WINDOWS))
@pytest.mark.slow
def test_pooling_rule_transposes(window, monoid):
    eqn = assert_rule_transposes(_pool(window, monoid), IMAGES)
    assert eqn.primitive.name == f"reduce_window_{monoid}"


@pytest.mark.parametrize("window", ["pool_2x2", "overlapping_same", "everything"])
@pytest.mark.slow
def test_select_and_gather_add_rule_transposes(window):
    """JAX's JVP of max pooling: linear in the tangents, chosen by the operand."""
    pool = _pool(window, "max")
    eqn = assert_rule_transposes(
        lambda t: jax.jvp(pool, (IMAGES,), (t,))[1], _normal(*IMAGES.shape)
    )
    assert eqn.primitive is lax.select_and_gather_add_p


@pytest.mark.parametrize("window", ["pool_2x2", "overlapping_same", "batch_and_channel_windows"])
@pytest.mark.slow
def test_select_and_scatter_add_rule_transposes(window):
    """JAX's VJP of max pooling, as found in user code that calls ``jax.grad``."""
    pool = _pool(window, "max")
    _, pullback = jax.vjp(pool, IMAGES)
    source = _normal(*pool(IMAGES).shape, seed=1)
    eqn = assert_rule_transposes(lambda g: pullback(g)[0], source)
    assert eqn.primitive is lax.select_and_scatter_add_p


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.slow
def test_max_pooling_ties_go_to_the_first_element_like_jax(padding):
    flat = jnp.array(
        [[1.0, 1.0, 2.0, 2.0, 0.0], [1.0, 1.0, 2.0, 2.0, 0.0], [3.0, 3.0, 3.0, 3.0, 3.0]]
    )
    images = flat.reshape(1, 3, 5, 1)

    def loss(x):
        pooled = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 1, 2, 1), padding)
        return jnp.sum(pooled * jnp.arange(1.0, pooled.size + 1).reshape(pooled.shape))

    np.testing.assert_array_equal(graph.grad(loss)(images), jax.grad(loss)(images))


def _pooling_model(x):
    """Max and average pooling, cumulative and plain reductions on one path."""
    pooled = lax.reduce_window(jnp.tanh(x), -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")
    averaged = lax.reduce_window(x * x, 0.0, lax.add, (1, 3, 3, 1), (1, 1, 1, 1), "SAME") / 9
    summary = jnp.cumsum(averaged, axis=1).max(axis=(1, 2)) + jnp.prod(pooled, axis=(1, 2))
    return jnp.sum(summary * lax.cummax(pooled, 2).sum(axis=(1, 2))) + jnp.sum(averaged.min(1))


@pytest.mark.slow
def test_engine_matches_jax_through_pooling():
    value, grad = jax.jit(graph.value_and_grad(_pooling_model))(IMAGES)
    expected_value, expected_grad = jax.jit(jax.value_and_grad(_pooling_model))(IMAGES)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_engine_second_order_through_pooling_and_reductions():
    v = _normal(*IMAGES.shape, seed=4)

    def hvp(grad):
        return jax.jit(grad(lambda x: jnp.vdot(grad(_pooling_model)(x), v)))(IMAGES)

    np.testing.assert_allclose(hvp(graph.grad), hvp(jax.grad), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_engine_differentiates_a_function_holding_jax_max_pool_gradient():
    """A gradient penalty: ``jax.grad`` inside the loss leaves select_and_scatter_add."""
    pool = _pool("overlapping_same", "max")

    def penalty(x):
        return jnp.sum(jax.grad(lambda x: jnp.sum(jnp.sin(pool(x))))(x) ** 2)

    np.testing.assert_allclose(
        jax.jit(graph.grad(penalty))(IMAGES),
        jax.jit(jax.grad(penalty))(IMAGES),
        rtol=1e-10,
        atol=1e-12,
    )


def _order_statistics(x):
    """Medians, quantiles and the largest values: sorting and top_k on one path."""
    spread = jnp.quantile(x, 0.8, axis=0) - jnp.quantile(x, 0.2, axis=0)
    return jnp.sum(jnp.median(x, axis=1) ** 2) * jnp.sum(lax.top_k(x, 2)[0] ** 2) + jnp.sum(
        spread**3
    )


@pytest.mark.slow
def test_engine_matches_jax_through_sorting_to_second_order():
    x, v = _normal(5, 6), _normal(5, 6, seed=1)

    def hvp(grad):
        return jax.jit(grad(lambda x: jnp.vdot(grad(_order_statistics)(x), v)))(x)

    np.testing.assert_allclose(
        jax.jit(graph.grad(_order_statistics))(x),
        jax.jit(jax.grad(_order_statistics))(x),
        rtol=1e-10,
        atol=1e-12,
    )
    np.testing.assert_allclose(hvp(graph.grad), hvp(jax.grad), rtol=1e-10, atol=1e-12)

"""The linear-algebra VJP rules of ``fungrad.graph``: ``dot_general`` and convolutions.

Each rule is checked by the inner-product identity against ``jax.jvp`` in float64 over
many dimension numbers, then the engine is compared with ``jax.grad`` on a convolutional
layer, to first and second order.
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


# (x shape, y shape, ((x contracting, y contracting), (x batch, y batch)))
DOT_CASES = {
    "matmul": ((2, 3), (3, 4), (((1,), (0,)), ((), ()))),
    "matvec": ((2, 3), (3,), (((1,), (0,)), ((), ()))),
    "inner": ((3,), (3,), (((0,), (0,)), ((), ()))),
    "outer": ((2,), (3,), (((), ()), ((), ()))),
    "contract_first_axes": ((3, 2), (3, 4), (((0,), (0,)), ((), ()))),
    "batched_matmul": ((5, 2, 3), (5, 3, 4), (((2,), (1,)), ((0,), (0,)))),
    "batch_last": ((2, 3, 5), (3, 4, 5), (((1,), (0,)), ((2,), (2,)))),
    "two_contractions_crossed": ((2, 3, 4, 5, 6), (5, 4, 3, 7), (((3, 1), (0, 2)), ((2,), (1,)))),
    "two_batches_crossed": ((2, 3, 4, 6), (4, 5, 2, 3), (((1,), (3,)), ((0, 2), (2, 0)))),
}


@pytest.mark.parametrize("name", sorted(DOT_CASES))
def test_dot_general_rule_transposes(name):
    x_shape, y_shape, numbers = DOT_CASES[name]
    eqn = assert_rule_transposes(
        lambda x, y: lax.dot_general(x, y, numbers), _normal(*x_shape), _normal(*y_shape, seed=1)
    )
    assert eqn.primitive is lax.dot_general_p


def test_dot_general_from_einsum_transposes():
    assert_rule_transposes(
        lambda x, y: jnp.einsum("abc,cbd->da", x, y), _normal(2, 3, 4), _normal(4, 3, 5, seed=1)
    )


def _matmul_in_float64(x, y):
    return lax.dot_general(x, y, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float64)


def test_dot_general_preferred_element_type_casts_cotangents_back():
    x, y = _normal(2, 3).astype(jnp.float32), _normal(3, 4, seed=1).astype(jnp.float32)
    eqn = assert_rule_transposes(_matmul_in_float64, x, y, rtol=1e-6)
    dx, dy = registry.rule_for(eqn.primitive)(jnp.ones((2, 4)), None, x, y, **eqn.params)
    assert (dx.dtype, dy.dtype) == (jnp.float32, jnp.float32)


def test_dot_general_integer_operands_have_no_cotangent():
    x, y = jnp.arange(6).reshape(2, 3), jnp.arange(12).reshape(3, 4)
    (eqn,) = jax.make_jaxpr(_matmul_in_float64)(x, y).eqns
    assert registry.rule_for(eqn.primitive)(jnp.ones((2, 4)), None, x, y, **eqn.params) == (
        None,
        None,
    )


# (window strides, padding, lhs dilation, rhs dilation)
CONV_GEOMETRIES = {
    "same": ((1, 1), "SAME", (1, 1), (1, 1)),
    "valid_stride_2": ((2, 2), "VALID", (1, 1), (1, 1)),
    "same_stride_2": ((2, 2), "SAME", (1, 1), (1, 1)),
    "explicit_kernel_dilation": ((2, 1), [(1, 2), (0, 1)], (1, 1), (2, 1)),
    "input_dilation": ((1, 2), [(2, 0), (1, 1)], (2, 1), (1, 1)),
    "negative_padding": ((3, 2), [(-1, 2), (0, 0)], (1, 2), (1, 1)),
    "dilated_same": ((2, 2), "SAME", (1, 1), (2, 2)),
}
LAYOUTS = {
    "NCHW": ("NCHW", "OIHW", "NCHW"),
    "NHWC": ("NHWC", "HWIO", "NHWC"),
    "mixed": ("NHWC", "OIHW", "NCHW"),
    "odd": ("CHWN", "IHWO", "HNWC"),
}


def _conv_operands(layout, feature_groups, batch_groups):
    lhs_spec, rhs_spec, _ = LAYOUTS[layout]
    sizes = {"N": 2 * batch_groups, "C": 2 * feature_groups, "H": 7, "W": 6}
    kernel = {"O": 4, "I": 2, "H": 3, "W": 2}
    lhs = _normal(*[sizes[axis] for axis in lhs_spec])
    rhs = _normal(*[kernel[axis] for axis in rhs_spec], seed=1)
    return lhs, rhs


def _conv(geometry, layout, feature_groups=1, batch_groups=1):
    strides, padding, lhs_dilation, rhs_dilation = CONV_GEOMETRIES[geometry]
    return lambda lhs, rhs: lax.conv_general_dilated(
        lhs,
        rhs,
        strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=LAYOUTS[layout],
        feature_group_count=feature_groups,
        batch_group_count=batch_groups,
    )


@pytest.mark.parametrize("geometry", sorted(CONV_GEOMETRIES))
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.slow
def test_conv_rule_transposes(geometry, layout):
    eqn = assert_rule_transposes(_conv(geometry, layout), *_conv_operands(layout, 1, 1))
    assert eqn.primitive is lax.conv_general_dilated_p


@pytest.mark.parametrize(
    "geometry, layout, feature_groups, batch_groups",
    [
        ("same", "NHWC", 2, 1),
        ("explicit_kernel_dilation", "odd", 2, 1),
        ("input_dilation", "mixed", 2, 1),
        ("valid_stride_2", "NCHW", 1, 2),
        ("negative_padding", "odd", 1, 2),
        ("same", "odd", 1, 1),
    ],
)
@pytest.mark.slow
def test_grouped_conv_rule_transposes(geometry, layout, feature_groups, batch_groups):
    operands = _conv_operands(layout, feature_groups, batch_groups)
    assert_rule_transposes(_conv(geometry, layout, feature_groups, batch_groups), *operands)


def test_depthwise_conv_rule_transposes():
    x, w = _normal(2, 8, 8, 3), _normal(3, 3, 1, 6, seed=1)
    f = lambda x, w: lax.conv_general_dilated(  # noqa: E731
        x, w, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=3
    )
    assert_rule_transposes(f, x, w)


def test_one_dimensional_conv_rule_transposes():
    f = lambda x, w: lax.conv_general_dilated(x, w, (2,), [(2, 1)], rhs_dilation=(2,))  # noqa: E731
    assert_rule_transposes(f, _normal(2, 3, 11), _normal(4, 3, 3, seed=1))


def _conv_layer(params, x):
    """A small CNN block: convolution, bias, tanh, 2x2 max pooling, a dense head."""
    h = lax.conv_general_dilated(
        x, params["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    h = jnp.tanh(h + params["bias"])
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    logits = h.reshape(h.shape[0], -1) @ params["dense"]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])


def _conv_layer_params():
    return {
        "kernel": 0.5 * _normal(3, 3, 2, 4, seed=1),
        "bias": 0.1 * _normal(4, seed=2),
        "dense": 0.3 * _normal(2 * 2 * 4, 3, seed=3),
    }


@pytest.mark.slow
def test_engine_matches_jax_on_a_conv_layer():
    params, x = _conv_layer_params(), _normal(3, 4, 4, 2)
    value, grads = jax.jit(graph.value_and_grad(_conv_layer))(params, x)
    expected_value, expected_grads = jax.jit(jax.value_and_grad(_conv_layer))(params, x)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(grads[name], expected_grads[name], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_engine_second_order_through_a_conv_layer():
    params, x = _conv_layer_params(), _normal(3, 4, 4, 2)
    direction = jax.tree_util.tree_map(lambda p: _normal(*p.shape, seed=7), params)

    def hvp(grad):
        def directional(p):
            return sum(
                jnp.vdot(a, b)
                for a, b in zip(
                    jax.tree_util.tree_leaves(grad(_conv_layer)(p, x)),
                    jax.tree_util.tree_leaves(direction),
                    strict=True,
                )
            )

        return jax.jit(grad(directional))(params)

    mine, expected = hvp(graph.grad), hvp(jax.grad)
    for name in params:
        np.testing.assert_allclose(mine[name], expected[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("groups", ["feature", "batch"])
@pytest.mark.slow
def test_engine_second_order_through_grouped_conv(groups):
    feature_groups, batch_groups = (2, 1) if groups == "feature" else (1, 2)
    lhs, rhs = _conv_operands("NHWC", feature_groups, batch_groups)
    conv = _conv("explicit_kernel_dilation", "NHWC", feature_groups, batch_groups)
    v_lhs, v_rhs = _normal(*lhs.shape, seed=5), _normal(*rhs.shape, seed=6)

    def loss(lhs, rhs):
        return jnp.sum(jnp.sin(conv(lhs, rhs)))

    def hvp(grad):
        first = grad(loss, argnums=(0, 1))
        return jax.jit(
            grad(
                lambda a, b: sum(
                    jnp.vdot(d, v) for d, v in zip(first(a, b), (v_lhs, v_rhs), strict=True)
                ),
                argnums=(0, 1),
            )
        )(lhs, rhs)

    for mine, expected in zip(hvp(graph.grad), hvp(jax.grad), strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-12)


def test_engine_second_order_through_dot_general():
    x, y, v = _normal(2, 3, 4), _normal(4, 3, 5, seed=1), _normal(2, 3, 4, seed=2)

    def loss(x):
        mixed = jnp.tanh(jnp.einsum("abc,cbd->da", x, y))
        return jnp.sum(mixed) * jnp.sum(jnp.einsum("abc,abc->b", x, x) ** 2)

    def hvp(grad):
        return jax.jit(grad(lambda x: jnp.vdot(grad(loss)(x), v)))(x)

    np.testing.assert_allclose(hvp(graph.grad), hvp(jax.grad), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_conv_preferred_element_type_casts_cotangents_back():
    x = _normal(2, 3, 6, 5).astype(jnp.float32)
    w = _normal(4, 3, 3, 2, seed=1).astype(jnp.float32)

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (2, 1), "SAME", preferred_element_type=jnp.float64)

    eqn = assert_rule_transposes(conv, x, w, rtol=1e-6)
    g = jnp.ones(conv(x, w).shape)
    dx, dw = registry.rule_for(eqn.primitive)(g, None, x, w, **eqn.params)
    assert (dx.dtype, dw.dtype) == (jnp.float32, jnp.float32)


@pytest.mark.slow
def test_engine_matches_jax_on_a_conv_layer_in_float32():
    params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float32), _conv_layer_params())
    x = _normal(3, 4, 4, 2).astype(jnp.float32)
    grads = jax.jit(graph.grad(_conv_layer))(params, x)
    expected = jax.jit(jax.grad(_conv_layer))(params, x)
    for name in params:
        assert grads[name].dtype == jnp.float32
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_engine_per_sample_conv_gradients_under_vmap():
    params, x = _conv_layer_params(), _normal(5, 4, 4, 2)

    def per_sample(grad):
        one = grad(lambda p, image: _conv_layer(p, image[None]))
        return jax.jit(jax.vmap(one, in_axes=(None, 0)))(params, x)

    mine, expected = per_sample(graph.grad), per_sample(jax.grad)
    for name in params:
        assert mine[name].shape == (5, *params[name].shape)
        np.testing.assert_allclose(mine[name], expected[name], rtol=1e-10, atol=1e-12)

"""The array-structure VJP rules of ``fungrad.graph`` against JAX's forward mode.

Each rule is called directly, with the parameters of the one equation ``jax.make_jaxpr``
records for a ``jnp``/``lax`` call, and checked by the inner-product identity
``<J t, c> == <t, J^T c>`` in float64, ``J t`` coming from ``jax.jvp`` (the oracle).
``assert_rule_transposes`` is shared with the other rule test modules.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend import core as jax_core

from fungrad import graph
from fungrad.graph import registry


def _differentiable(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _target_equation(jaxpr, env):
    """The one equation of ``jaxpr`` (looking through ``jit``) that reads a float argument.

    ``env`` maps a variable to ``(value, position)``: ``position`` is the index of the float
    function argument the value is, or ``None`` for a constant. Equations on constants only
    (index normalisation, say) are evaluated on the way. Returns ``(equation, inputs)``.
    """
    found = []
    for eqn in jaxpr.eqns:
        inputs = [
            (jnp.asarray(v.val), None) if isinstance(v, jax_core.Literal) else env[v]
            for v in eqn.invars
        ]
        if eqn.primitive.name in ("jit", "pjit"):
            inner = eqn.params["jaxpr"]
            inner_env = {
                v: (c, None) for v, c in zip(inner.jaxpr.constvars, inner.consts, strict=True)
            }
            inner_env.update(zip(inner.jaxpr.invars, inputs, strict=True))
            if all(position is None for _, position in inputs):
                outs = jax.core.eval_jaxpr(inner.jaxpr, inner.consts, *[v for v, _ in inputs])
                env.update({v: (o, None) for v, o in zip(eqn.outvars, outs, strict=True)})
            else:
                found.append(_target_equation(inner.jaxpr, inner_env))
        elif any(position is not None for _, position in inputs):
            found.append((eqn, inputs))
            env.update({v: (None, -1) for v in eqn.outvars})  # so a second one shows
        else:
            outs = eqn.primitive.bind(*[v for v, _ in inputs], **eqn.params)
            outs = outs if eqn.primitive.multiple_results else [outs]
            env.update({v: (o, None) for v, o in zip(eqn.outvars, outs, strict=True)})
    assert len(found) == 1, [eqn.primitive.name for eqn, _ in found]
    return found[0]


def _primitives_without_rules(jaxpr) -> set:
    """The primitives in ``jaxpr`` (and the jaxprs inside it) that the engine cannot differentiate."""
    missing = set()
    for eqn in jaxpr.eqns:
        if not registry.has_rule(eqn.primitive):
            missing.add(eqn.primitive.name)
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns"):
                missing |= _primitives_without_rules(inner)
    return missing


def _random_like(rng, shape, dtype):
    if not jnp.issubdtype(dtype, jnp.inexact):
        return np.zeros(shape, jax.dtypes.float0)
    return jnp.asarray(rng.standard_normal(shape), dtype)


def _vdot(a, b):
    return float(np.vdot(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def assert_rule_transposes(f, *args, seed=0, rtol=1e-10):
    """Check the rule of ``f``'s single primitive: ``<J t, c> == <t, rule(c)>``.

    The equation, its rule, ``f`` and ``jax.jvp`` of ``f`` run in one compiled program
    (compiling each operation on its own, eagerly, would cost more than the check).

    Args:
        f: a function of ``args`` whose jaxpr holds one primitive (possibly inside ``jit``).
        *args: its arguments; the floating ones get random tangents.
        seed: seeds the random tangents and output cotangents.
        rtol: relative tolerance of the identity.

    Returns:
        The equation checked, for tests that also assert its parameters.
    """
    closed = jax.make_jaxpr(f)(*args)
    args = tuple(jnp.asarray(a) for a in args)
    env = {v: (c, None) for v, c in zip(closed.jaxpr.constvars, closed.consts, strict=True)}
    env.update(
        (v, (a, i if _differentiable(a) else None))
        for i, (v, a) in enumerate(zip(closed.jaxpr.invars, args, strict=True))
    )
    eqn, inputs = _target_equation(closed.jaxpr, env)
    values = [value for value, _ in inputs]
    multiple = eqn.primitive.multiple_results
    shapes = jax.eval_shape(lambda *values: eqn.primitive.bind(*values, **eqn.params), *values)
    rng = np.random.default_rng(seed)
    cotangents = [
        _random_like(rng, o.shape, o.dtype) if _differentiable(o) else jnp.zeros(o.shape)
        for o in (shapes if multiple else [shapes])
    ]
    g = cotangents if multiple else cotangents[0]
    rule = registry.rule_for(eqn.primitive)

    def pull_back(g, ans, *values):
        return rule(g, ans, *values, **eqn.params)

    tangents = [_random_like(rng, a.shape, a.dtype) for a in args]
    floats = {i: t for i, t in enumerate(tangents) if t.dtype != jax.dtypes.float0}

    @jax.jit
    def check(g, values, args, floats):
        ans = eqn.primitive.bind(*values, **eqn.params)
        full = tuple(floats.get(i, t) for i, t in enumerate(tangents))  # float0 ones as they are
        _, jvp_out = jax.jvp(f, args, full)
        return ans, f(*args), pull_back(g, ans, *values), jvp_out

    ans, expected, results, jvp_out = check(g, values, args, floats)
    outputs = list(ans) if multiple else [ans]
    for mine, want in zip(outputs, jax.tree_util.tree_leaves(expected), strict=True):
        np.testing.assert_array_equal(mine, want)  # f is that one equation
    assert len(results) == len(values), (eqn.primitive, len(results), len(values))
    missing = _primitives_without_rules(jax.make_jaxpr(pull_back)(g, ans, *values).jaxpr)
    assert not missing, f"the backward pass of {eqn.primitive} emits {missing}, which have no rule"

    jvp_out = jax.tree_util.tree_leaves(jvp_out)
    forward = sum(
        _vdot(t, c) for t, c in zip(jvp_out, cotangents, strict=True) if _differentiable(t)
    )
    backward = 0.0
    for (value, position), result in zip(inputs, results, strict=True):
        if result is None:
            continue
        assert result.shape == value.shape and result.dtype == value.dtype, (
            eqn.primitive,
            result.shape,
            result.dtype,
            value.shape,
            value.dtype,
        )
        if position is not None:
            backward += _vdot(tangents[position], result)
    np.testing.assert_allclose(backward, forward, rtol=rtol, atol=1e-12)
    return eqn


def _normal(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


X = _normal(2, 3, 4)

ONE_INPUT = {
    "broadcast_new_axes": lambda x: jnp.broadcast_to(x, (5, 2, 3, 4)),
    "expand_dims": lambda x: jnp.expand_dims(x, (0, 2)),
    "reshape": lambda x: x.reshape(6, 4),
    "reshape_with_dimensions": lambda x: lax.reshape(x, (4, 6), dimensions=(2, 0, 1)),
    "transpose": lambda x: x.transpose(2, 0, 1),
    "rev": lambda x: jnp.flip(x, (0, 2)),
    "copy": jnp.copy,
    "device_put": jax.device_put,
    "sharding_constraint": lambda x: lax.with_sharding_constraint(
        x, jax.sharding.SingleDeviceSharding(jax.devices()[0])
    ),
    "slice_strided": lambda x: x[:, ::2, 1:],
    "slice_strides_uneven": lambda x: lax.slice(x, (0, 1, 0), (2, 3, 4), (2, 1, 3)),
    "pad_negative_interior": lambda x: lax.pad(x, 0.0, ((1, 2, 0), (-1, 0, 2), (0, -2, 1))),
    "jnp_pad": lambda x: jnp.pad(x, ((1, 1), (0, 2), (3, 0))),
    "split": lambda x: jnp.split(x, [1, 3], axis=2),
    "unstack": lambda x: jnp.unstack(x, axis=1),
    "tile": lambda x: jnp.tile(x, (2, 1, 3)),
    "sort": lambda x: jnp.sort(x, axis=1),
    "dynamic_slice": lambda x: lax.dynamic_slice(x, (1, 1, 2), (1, 2, 2)),
    "dynamic_slice_clamped": lambda x: lax.dynamic_slice(x, (1, 2, 3), (2, 2, 2)),
    "index_rows": lambda x: x[jnp.array([0, 1, 1])],
    "index_columns": lambda x: x[:, jnp.array([2, 0, 2, 2])],
    "index_negative": lambda x: x[:, :, jnp.array([-1, 0])],
    "index_two_arrays": lambda x: x[jnp.array([1, 0]), :, jnp.array([3, 3])],
    "index_scalar_and_array": lambda x: x[1, jnp.array([[2, 0], [1, 1]])],
    "take": lambda x: jnp.take(x, jnp.array([[3, 1], [0, 3]]), axis=2),
    "take_along_axis": lambda x: jnp.take_along_axis(
        x, jnp.array([[[3], [1], [0]], [[0], [0], [2]]]), axis=2
    ),
    "take_along_axis_fill_out_of_bounds": lambda x: jnp.take_along_axis(
        x, jnp.array([[[3], [1], [9]], [[0], [0], [2]]]), axis=2, mode="fill"
    ),
    "take_clip": lambda x: jnp.take(x, jnp.array([5, 1, -7]), axis=1, mode="clip"),
}


@pytest.mark.parametrize("name", sorted(ONE_INPUT))
def test_one_input_rule_transposes(name):
    assert_rule_transposes(ONE_INPUT[name], X)


def test_broadcast_of_size_one_axes_sums_them():
    x = _normal(2, 1, 4)
    eqn = assert_rule_transposes(lambda x: jnp.broadcast_to(x, (3, 2, 5, 4)), x)
    assert eqn.primitive is lax.broadcast_in_dim_p
    (d,) = registry.rule_for(eqn.primitive)(jnp.ones((3, 2, 5, 4)), None, x, **eqn.params)
    np.testing.assert_array_equal(d, np.full((2, 1, 4), 15.0))


def test_squeeze_transposes():
    eqn = assert_rule_transposes(lambda x: lax.squeeze(x, (0, 2)), _normal(1, 3, 1, 2))
    assert eqn.primitive is lax.squeeze_p


TWO_INPUTS = {
    "scatter_add_repeated": (lambda x, u: x.at[jnp.array([0, 0, 1])].add(u), (3, 3, 4)),
    "scatter_add_columns": (lambda x, u: x.at[:, jnp.array([2, 2])].add(u), (2, 2, 4)),
    "scatter_add_dropped": (lambda x, u: x.at[jnp.array([0, 5])].add(u, mode="drop"), (2, 3, 4)),
    "scatter_set_repeated": (lambda x, u: x.at[jnp.array([0, 0, 1])].set(u), (3, 3, 4)),
    "scatter_set_mixed": (lambda x, u: x.at[:, jnp.array([2, 0, 2]), 1].set(u), (2, 3)),
    "dynamic_update_slice": (lambda x, u: lax.dynamic_update_slice(x, u, (1, 2, 0)), (1, 2, 3)),
    "dynamic_update_slice_clamped": (
        lambda x, u: lax.dynamic_update_slice(x, u, (1, 2, 3)),
        (1, 2, 3),
    ),
    "concatenate": (lambda x, y: jnp.concatenate([x, y], 1), (2, 2, 4)),
    "stack": (lambda x, y: jnp.stack([x, y, x], 2), (2, 3, 4)),
    "sort_with_payload": (lambda x, y: lax.sort((x, y), dimension=1, num_keys=1), (2, 3, 4)),
    "pad_value": (lambda x, v: lax.pad(x, v, ((1, 2, 0), (-1, 0, 2), (0, -2, 1))), ()),
}


@pytest.mark.parametrize("name", sorted(TWO_INPUTS))
@pytest.mark.slow
def test_two_input_rule_transposes(name):
    f, other_shape = TWO_INPUTS[name]
    assert_rule_transposes(f, X, _normal(*other_shape, seed=1))


def test_integer_start_indices_get_no_cotangent():
    eqn = assert_rule_transposes(lambda x, i: lax.dynamic_slice(x, (i, 1, 2), (1, 2, 2)), X, 1)
    results = registry.rule_for(eqn.primitive)(jnp.ones((1, 2, 2)), None, X, 1, 1, 2, **eqn.params)
    assert results[1:] == (None, None, None)


def test_gather_indices_get_no_cotangent():
    indices = jnp.array([[0], [1], [1]])
    eqn = assert_rule_transposes(lambda x: x[jnp.array([0, 1, 1])], X)
    d_x, d_indices = registry.rule_for(eqn.primitive)(
        jnp.ones((3, 3, 4)), None, X, indices, **eqn.params
    )
    assert d_indices is None
    np.testing.assert_array_equal(d_x[:, 0, 0], [1.0, 2.0])  # row 1 was read twice


@pytest.mark.slow
def test_scatter_set_gives_a_repeated_position_to_the_winning_update_only():
    x, updates = jnp.zeros(3), jnp.array([10.0, 20.0])
    f = lambda x, u: x.at[jnp.array([1, 1])].set(u)  # noqa: E731
    eqn = assert_rule_transposes(f, x, updates)
    written = f(x, updates)[1]
    indices = jnp.array([[1], [1]])
    d_x, _, d_updates = registry.rule_for(eqn.primitive)(
        jnp.ones(3), None, x, indices, updates, **eqn.params
    )
    np.testing.assert_array_equal(d_x, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(d_updates, (updates == written).astype(float))


def test_convert_element_type_float32_casts_the_cotangent_back():
    x = _normal(3, 2)
    assert_rule_transposes(lambda x: x.astype(jnp.float32), x, rtol=1e-6)
    eqn = jax.make_jaxpr(lambda x: x.astype(jnp.float32))(x).eqns[0]
    (d,) = registry.rule_for(eqn.primitive)(jnp.ones((3, 2), jnp.float32), None, x, **eqn.params)
    assert d.dtype == jnp.float64


@pytest.mark.parametrize(
    "f, x",
    [
        (lambda x: x.astype(jnp.float64), jnp.arange(3)),
        (lambda x: x.astype(jnp.int32), jnp.arange(3.0)),
        (lambda x: x.astype(jnp.float64), jnp.array([True, False])),
    ],
    ids=["int_to_float", "float_to_int", "bool_to_float"],
)
def test_convert_element_type_across_integers_has_no_cotangent(f, x):
    (eqn,) = jax.make_jaxpr(f)(x).eqns
    ans = f(x)
    g = jnp.ones(ans.shape, ans.dtype if jnp.issubdtype(ans.dtype, jnp.inexact) else jnp.float64)
    assert registry.rule_for(eqn.primitive)(g, ans, x, **eqn.params) == (None,)


@pytest.mark.parametrize(
    "f",
    [lax.stop_gradient, lambda x: lax.iota(jnp.int32, 3) + 0 * x.sum()],
    ids=["stop_gradient", "iota"],
)
def test_non_differentiable_structure_primitives(f):
    for eqn in jax.make_jaxpr(f)(X).eqns:
        if eqn.primitive in (lax.stop_gradient_p, lax.iota_p):
            inputs = [X] * len(eqn.invars)
            assert registry.rule_for(eqn.primitive)(None, None, *inputs, **eqn.params) == (
                None,
            ) * len(inputs)


def test_slice_vjp_puts_the_cotangent_at_the_strided_positions():
    eqn = jax.make_jaxpr(lambda x: x[1::2])(jnp.zeros(5)).eqns[0]
    (d,) = registry.rule_for(eqn.primitive)(jnp.array([1.0, 2.0]), None, jnp.zeros(5), **eqn.params)
    np.testing.assert_array_equal(d, [0.0, 1.0, 0.0, 2.0, 0.0])


def _indexing_model(x, w):
    """Reads, writes and rearranges: every rule of this module on one path."""
    rows = x[jnp.array([2, 0, 2])]
    picked = jnp.take_along_axis(x, jnp.array([[1], [0], [3]]), axis=1)
    grown = jnp.concatenate([rows, jnp.broadcast_to(picked, (3, 4)), jnp.flip(x, 0)], axis=0)
    padded = jnp.pad(grown, ((1, 0), (0, 2)))[:, ::2]
    written = padded.at[jnp.array([0, 0, 4])].add(w).at[1].set(w[0] ** 2)
    window = lax.dynamic_slice(written, (2, 1), (4, 2))
    return jnp.sum(jnp.sin(window.T.reshape(-1)) * jnp.arange(8.0)) + jnp.sum(written**2)


@pytest.mark.slow
def test_engine_matches_jax_on_an_indexing_model():
    x, w = _normal(3, 4), _normal(3, 3, seed=1)
    value, grads = jax.jit(graph.value_and_grad(_indexing_model, argnums=(0, 1)))(x, w)
    expected_value, expected_grads = jax.jit(jax.value_and_grad(_indexing_model, argnums=(0, 1)))(
        x, w
    )
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    for mine, expected in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(mine, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_engine_second_order_through_gather_and_scatter():
    x, w, v = _normal(3, 4), _normal(3, 3, seed=1), _normal(3, 4, seed=2)

    def hvp(grad):
        return jax.jit(grad(lambda x: jnp.vdot(grad(lambda x: _indexing_model(x, w))(x), v)))(x)

    np.testing.assert_allclose(hvp(graph.grad), hvp(jax.grad), rtol=1e-10, atol=1e-12)


def test_sort_by_two_keys_with_ties_transposes():
    keys = jnp.round(X)  # ties in the first key, broken by the second
    x, payload = _normal(2, 3, 4, seed=1), _normal(2, 3, 4, seed=2)
    eqn = assert_rule_transposes(
        lambda k, x, p: lax.sort((k, x, p), dimension=2, num_keys=2), keys, x, payload
    )
    assert eqn.params["num_keys"] == 2

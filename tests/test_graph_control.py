"""Calls and control flow through the general engine, against ``jax.value_and_grad`` in float64:
jax.nn functions (custom JVP rules), nested jit, closed_call, checkpoint, cond, scan (an RNN),
fori_loop, the while_loop refusal and the unknown-primitive error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend import core as jex
from jax.interpreters import mlir

from fungrad import graph
from fungrad.graph import registry


def assert_same_value_and_grad(f, *args, argnums=0, rtol=1e-10):
    """The engine's value and gradient of ``f`` equal JAX's (both in one compiled program)."""

    @jax.jit
    def both(*args):
        mine = graph.value_and_grad(f, argnums=argnums)(*args)
        return mine, jax.value_and_grad(f, argnums=argnums)(*args)

    mine, theirs = both(*args)
    assert jax.tree_util.tree_structure(mine) == jax.tree_util.tree_structure(theirs)
    for a, b in zip(
        jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(theirs), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12)


def _x(n=5, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(n))


# --- jax.nn: custom JVP rules, jitted helpers ----------------------------------------------
ACTIVATIONS = {
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": jax.nn.leaky_relu,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_erf": lambda x: jax.nn.gelu(x, approximate=False),
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "log_sigmoid": jax.nn.log_sigmoid,
    "tanh": jnp.tanh,
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.slow
def test_jax_nn_activations(name):
    act = ACTIVATIONS[name]
    weights = jnp.linspace(-1.0, 2.0, 5)
    assert_same_value_and_grad(lambda x: jnp.sum(act(x) * weights), 2.0 * _x())


@pytest.mark.slow
def test_activation_kinks_use_the_functions_own_derivative():
    x = jnp.array([-1.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(graph.grad(lambda x: jnp.sum(jax.nn.relu(x)))(x), [0, 0, 0, 1])
    np.testing.assert_allclose(graph.grad(lambda x: jax.nn.softplus(x))(0.0), 0.5)
    for act in (jax.nn.relu, jax.nn.softplus, jax.nn.relu6, jax.nn.elu):
        assert_same_value_and_grad(lambda x, act=act: jnp.sum(act(x) * jnp.arange(4.0)), x)


@pytest.mark.parametrize(
    "name, f",
    [
        ("softmax", lambda x: jnp.sum(jax.nn.softmax(x) * jnp.arange(10.0).reshape(2, 5))),
        ("log_softmax", lambda x: jnp.sum(jax.nn.log_softmax(x, axis=0) ** 2)),
        ("logsumexp", lambda x: jnp.sum(jax.scipy.special.logsumexp(x, axis=-1))),
        ("logsumexp_all", lambda x: jax.nn.logsumexp(x)),
        ("standardize", lambda x: jnp.sum(jax.nn.standardize(x, axis=-1) * x)),
        ("one_hot_loss", lambda x: -jnp.sum(jax.nn.one_hot(1, 5) * jax.nn.log_softmax(x))),
    ],
)
@pytest.mark.slow
def test_softmax_family(name, f):
    assert_same_value_and_grad(f, 3.0 * _x(10).reshape(2, 5))


def test_user_custom_jvp_rule_is_used():
    @jax.custom_jvp
    def scaled_identity(x):
        return x

    scaled_identity.defjvps(lambda t, ans, x: 3.0 * t)
    assert float(graph.grad(lambda x: scaled_identity(x) * x)(2.0)) == 3.0 * 2.0 + 2.0
    assert_same_value_and_grad(lambda x: jnp.sum(scaled_identity(jnp.sin(x))), _x())


def test_custom_vjp_primal_body_is_differentiated():
    @jax.custom_vjp
    def clip_gradient(x):
        return jnp.sin(x)

    clip_gradient.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (jnp.clip(g, -0.1, 0.1),))
    x = _x()
    mine = graph.grad(lambda x: jnp.sum(clip_gradient(x) * 5.0))(x)
    np.testing.assert_allclose(mine, 5.0 * jnp.cos(x), rtol=1e-12)


# --- Calls --------------------------------------------------------------------------------
def test_nested_jit():
    inner = jax.jit(lambda x, w: jnp.tanh(x * w) + w)

    @jax.jit
    def middle(x, w):
        return inner(x, w) * inner(w, x)

    assert_same_value_and_grad(
        lambda x, w: jnp.sum(middle(x, w) ** 2), _x(), _x(seed=1), argnums=(0, 1)
    )


def test_closed_call():
    body = jax.make_jaxpr(lambda x, y: jnp.sin(x) * y)(1.0, 1.0)
    a, b = (jex.Var(v.aval) for v in body.jaxpr.invars)
    out = jex.Var(body.jaxpr.outvars[0].aval)
    eqn = jex.new_jaxpr_eqn(
        [a, b], [out], jex.primitives.closed_call_p, {"call_jaxpr": body}, jex.no_effects
    )
    jaxpr = jex.Jaxpr([], [a, b], [out], [eqn], debug_info=body.jaxpr.debug_info)
    call = jex.jaxpr_as_fun(jex.ClosedJaxpr(jaxpr, []))
    f = lambda x, y: call(x, y)[0] * x  # noqa: E731
    assert "closed_call" in str(jax.make_jaxpr(f)(1.0, 2.0))
    assert_same_value_and_grad(f, jnp.float32(0.7), jnp.float32(-1.3), argnums=(0, 1), rtol=1e-6)


def test_checkpoint():
    f = jax.checkpoint(lambda x: jnp.sum(jnp.sin(x) * jnp.exp(x)))
    assert_same_value_and_grad(f, _x())


# --- cond ---------------------------------------------------------------------------------
def _branchy(x, w):
    def positive(x, w):
        return jnp.sin(x) * w, jnp.sum(x)

    def negative(x, w):
        return x * x, 2.0 * jnp.sum(w)

    y, s = lax.cond(jnp.sum(x) > 0, positive, negative, x, w)
    return jnp.sum(y) * s


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_takes_the_branch_and_differentiates_it(sign):
    assert_same_value_and_grad(_branchy, sign * jnp.abs(_x()), _x(seed=2), argnums=(0, 1))


@pytest.mark.parametrize("index", [0, 1, 2, 7])
@pytest.mark.slow
def test_switch_with_an_integer_operand(index):
    def f(x, index):
        branches = [lambda x, n: x * n, lambda x, n: jnp.exp(x) + n, lambda x, n: x]
        return jnp.sum(lax.switch(index, branches, x, 3))

    assert_same_value_and_grad(f, _x(), index)


@pytest.mark.slow
def test_cond_under_vmap_and_jit():
    xs = jnp.stack([jnp.abs(_x()), -jnp.abs(_x(seed=3))])
    w = _x(seed=4)
    mine = jax.jit(jax.vmap(graph.grad(_branchy), in_axes=(0, None)))(xs, w)
    theirs = jax.vmap(jax.grad(_branchy), in_axes=(0, None))(xs, w)
    np.testing.assert_allclose(mine, theirs, rtol=1e-10)


# --- scan ---------------------------------------------------------------------------------
def _rnn_loss(params, xs):
    def cell(h, x):
        h = jnp.tanh(params["w"] @ h + params["u"] @ x + params["b"])
        return h, jnp.sum(h**2)

    h, ys = lax.scan(cell, jnp.zeros(3), xs)
    return jnp.sum(h) + jnp.sum(ys * jnp.arange(1.0, 1.0 + xs.shape[0]))


def _rnn_params(seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    return {
        "w": 0.5 * jax.random.normal(k[0], (3, 3)),
        "u": jax.random.normal(k[1], (3, 2)),
        "b": jax.random.normal(k[2], (3,)),
    }


@pytest.mark.slow
def test_scan_small_rnn():
    xs = jax.random.normal(jax.random.PRNGKey(9), (6, 2))
    assert_same_value_and_grad(_rnn_loss, _rnn_params(), xs, argnums=(0, 1))


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_with_several_carries_consts_and_outputs(reverse):
    def f(x, w):
        def body(carry, x_t):
            a, b = carry
            return (a * jnp.cos(x_t) + w, b + a * x_t), (a * b, jnp.sin(x_t) * w)

        (a, b), (p, q) = lax.scan(body, (x[0], 0.5), x, reverse=reverse)
        return a + b * b + jnp.sum(p * q) + jnp.sum(q)

    assert_same_value_and_grad(f, _x(4), 0.8, argnums=(0, 1))


def test_scan_with_length_and_no_xs():
    def f(x):
        carry, ys = lax.scan(lambda c, _: (jnp.sin(c) * x, c), x, None, length=5)
        return carry + jnp.sum(ys)

    assert_same_value_and_grad(f, 0.9)


def test_fori_loop_with_static_bounds_is_a_scan():
    def f(x):
        return jnp.sum(lax.fori_loop(0, 4, lambda i, c: jnp.sin(c) * x + i, x))

    assert "scan" in str(jax.make_jaxpr(f)(_x()))
    assert_same_value_and_grad(f, _x())


@pytest.mark.slow
def test_scan_under_jit():
    xs = jax.random.normal(jax.random.PRNGKey(9), (4, 2))
    mine = jax.jit(graph.grad(_rnn_loss))(_rnn_params(), xs)
    theirs = jax.grad(_rnn_loss)(_rnn_params(), xs)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10), mine, theirs)


# --- Refusals and unknown primitives ------------------------------------------------------
def test_while_loop_is_refused_with_a_clear_error():
    def f(x):
        return lax.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, x)

    with pytest.raises(registry.UnsupportedPrimitiveError, match=r"while_loop.*lax\.scan") as info:
        graph.grad(f)(1.0)
    assert "'while'" in str(info.value) and "test_graph_control.py" in str(info.value)


def test_while_loop_on_constants_only_is_fine():
    def f(x):
        n = lax.while_loop(lambda c: c < 10.0, lambda c: c * 2.0, jnp.float64(1.0))
        return x * n

    assert float(graph.grad(f)(1.0)) == 16.0


def test_unknown_primitive_inside_nested_jit_names_the_inner_line():
    cube_root = jax.jit(lambda x: lax.cbrt(x) + x)
    rule = registry._RULES.pop(lax.cbrt_p)  # as if it had never been written
    try:
        with pytest.raises(
            registry.UnsupportedPrimitiveError, match="'cbrt'.*test_graph_control.py"
        ):
            graph.grad(lambda x: jnp.sum(cube_root(x)))(jnp.ones(3))
    finally:
        graph.defvjp(lax.cbrt_p, rule)
    assert registry.has_rule(lax.cbrt_p)


def test_unknown_primitive_inside_a_library_function_names_the_users_call():
    rule = registry._RULES.pop(lax.max_p)  # jnp.clip's inner max, traced inside JAX
    try:
        with pytest.raises(
            registry.UnsupportedPrimitiveError, match="'max'.*test_graph_control.py"
        ):
            graph.grad(lambda x: jnp.sum(jnp.clip(x, 0.0, 1.0)))(jnp.ones(3))
    finally:
        graph.defvjp(lax.max_p, rule)


def test_user_rule_works_inside_scan():
    halve = jex.Primitive("fungrad_test_halve")
    halve.def_impl(lambda x: x / 2.0)
    halve.def_abstract_eval(lambda x: x)
    mlir.register_lowering(halve, mlir.lower_fun(lambda x: x / 2.0, multiple_results=False))
    graph.defvjp(halve, lambda g, ans, x: (g / 2.0,))

    def f(x):
        return lax.scan(lambda c, _: (halve.bind(c) * x, None), x, None, length=3)[0]

    # c0 = x, c_{k+1} = c_k x / 2, so c3 = x^4 / 8 and the derivative is x^3 / 2.
    np.testing.assert_allclose(graph.grad(f)(2.0), 2.0**3 / 2, rtol=1e-12)

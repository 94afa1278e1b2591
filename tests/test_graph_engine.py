"""The general engine's interpreter and public functions: the lesson's graphs, JAX's calling
conventions (pytrees, argnums, has_aux), branches adding up, and the errors a user can meet."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend.core import Primitive

from fungrad import graph
from fungrad.graph import interpreter, registry


def _close(a, b, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-12)


# --- The lesson's graphs -----------------------------------------------------------------
def test_lesson_graph_product_of_a_and_a_plus_b():
    y, (dy_da, dy_db) = graph.value_and_grad(lambda a, b: a * (a + b), argnums=(0, 1))(3.0, 4.0)
    assert (float(y), float(dy_da), float(dy_db)) == (21.0, 10.0, 3.0)


def test_lesson_graph_sin_of_cube():
    x = jnp.float64(2.0)
    _close(graph.grad(lambda x: jnp.sin(x**3))(x), 3 * 2.0**2 * np.cos(8.0))


def test_lesson_graph_square_times_sin():
    for x in (jnp.float64(2.0), jnp.float64(-0.7)):
        expected = 2 * x * np.sin(x) + x**2 * np.cos(x)
        _close(graph.grad(lambda x: x**2 * jnp.sin(x))(x), expected)


def test_record_keeps_values_and_cotangents_of_every_node():
    rec = interpreter.record(lambda a, b: a * (a + b), jnp.float64(3.0), jnp.float64(4.0))
    a, b = rec.jaxpr.jaxpr.invars
    add_eqn, mul_eqn = rec.jaxpr.jaxpr.eqns
    s, y = add_eqn.outvars[0], mul_eqn.outvars[0]
    assert float(rec.values[s]) == 7.0 and float(rec.values[y]) == 21.0
    # y = a * s: ybar = 1, sbar = a = 3, abar = s + sbar (two paths) = 7 + 3, bbar = sbar.
    assert float(rec.cotangents[y]) == 1.0 and float(rec.cotangents[s]) == 3.0
    assert float(rec.cotangents[a]) == 10.0 and float(rec.cotangents[b]) == 3.0
    assert rec.in_tree == jax.tree_util.tree_structure((1.0, 1.0))


# --- Branches add, chains multiply ---------------------------------------------------------
def test_value_used_along_several_paths_adds_its_cotangents():
    def f(x):
        u = jnp.sin(x)
        return u * x + u * u - jnp.exp(u) * x * x

    for x in (0.3, -1.2, 2.5):
        x = jnp.float64(x)
        _close(graph.value_and_grad(f)(x), jax.value_and_grad(f)(x))


def test_vjp_of_array_function_with_broadcast_scalar():
    def f(x, s):
        return jnp.cos(x) * s + s - x * 2.0

    x, s = jnp.linspace(-1.0, 1.0, 5), jnp.float64(0.4)
    ct = jnp.arange(5.0)
    out, vjp_fn = graph.vjp(f, x, s)
    expected_out, expected_vjp = jax.vjp(f, x, s)
    _close(out, expected_out)
    for mine, theirs in zip(vjp_fn(ct), expected_vjp(ct), strict=True):
        _close(mine, theirs)


def test_outputs_that_are_inputs_constants_or_repeated():
    def f(x, y):
        return {"same": x, "twice": (x * y, x * y), "const": jnp.float64(1.0)}

    x, y = jnp.float64(1.5), jnp.float64(-2.0)
    ct = {"same": 1.0, "twice": (2.0, 3.0), "const": 5.0}
    ct = jax.tree_util.tree_map(jnp.float64, ct)
    _, vjp_fn = graph.vjp(f, x, y)
    _, expected = jax.vjp(f, x, y)
    for mine, theirs in zip(vjp_fn(ct), expected(ct), strict=True):
        _close(mine, theirs)


def test_unused_input_gets_zeros_and_integer_input_float0():
    _, vjp_fn = graph.vjp(lambda x, unused, n: x * 3.0, 1.0, jnp.ones(2), jnp.arange(3))
    dx, dunused, dn = vjp_fn(1.0)
    assert float(dx) == 3.0
    np.testing.assert_array_equal(dunused, np.zeros(2))
    assert dn.dtype == jax.dtypes.float0 and dn.shape == (3,)


# --- JAX's calling conventions ------------------------------------------------------------
def test_pytree_arguments_argnums_and_kwargs():
    def f(params, x, *, scale):
        return (params["w"] * x + params["b"][0] * params["b"][1]) * scale

    params = {"w": jnp.float64(0.5), "b": (jnp.float64(2.0), jnp.float64(-1.0))}
    x = jnp.float64(3.0)
    for argnums in (0, 1, (0, 1), (1, 0), -1):
        mine = graph.grad(f, argnums=argnums)(params, x, scale=2.0)
        theirs = jax.grad(f, argnums=argnums)(params, x, scale=2.0)
        assert jax.tree_util.tree_structure(mine) == jax.tree_util.tree_structure(theirs)
        jax.tree_util.tree_map(_close, mine, theirs)


def test_has_aux_returns_aux_untouched():
    def f(x):
        return x * x, {"note": x + 1.0}

    (value, aux), g = graph.value_and_grad(f, has_aux=True)(jnp.float64(3.0))
    assert float(value) == 9.0 and float(aux["note"]) == 4.0 and float(g) == 6.0
    g, aux = graph.grad(f, has_aux=True)(jnp.float64(3.0))
    assert float(g) == 6.0 and float(aux["note"]) == 4.0
    out, vjp_fn, aux = graph.vjp(f, jnp.float64(3.0), has_aux=True)
    assert float(vjp_fn(jnp.float64(1.0))[0]) == 6.0 and float(aux["note"]) == 4.0


def test_grad_keeps_the_name_and_docstring_of_f():
    def loss(x):
        """The loss."""
        return x * x

    assert graph.grad(loss).__name__ == "loss" and graph.grad(loss).__doc__ == "The loss."


# --- Errors -------------------------------------------------------------------------------
def test_grad_of_non_scalar_output_is_a_type_error():
    with pytest.raises(TypeError, match=r"scalar-output.*shape: \(3,\)"):
        graph.grad(lambda x: x * 2.0)(jnp.ones(3))


def test_grad_of_integer_output_or_input_is_a_type_error():
    with pytest.raises(TypeError, match="real-valued outputs"):
        graph.grad(lambda x: (x > 0).astype(jnp.int32))(1.0)
    with pytest.raises(TypeError, match="real-valued inputs"):
        graph.grad(lambda n: n * 2)(3)


def test_bad_argnums_and_has_aux_are_named():
    with pytest.raises(ValueError, match="argnums=2"):
        graph.grad(lambda x, y: x * y, argnums=2)(1.0, 2.0)
    with pytest.raises(TypeError, match="argnums"):
        graph.grad(lambda x: x, argnums="0")(1.0)
    with pytest.raises(TypeError, match="has_aux=True"):
        graph.grad(lambda x: x * x, has_aux=True)(1.0)


def test_vjp_fn_checks_the_cotangent():
    _, vjp_fn = graph.vjp(lambda x: (x, x), jnp.ones(2))
    with pytest.raises(TypeError, match="structure"):
        vjp_fn(jnp.ones(2))
    with pytest.raises(ValueError, match="shape"):
        vjp_fn((jnp.ones(2), jnp.ones(3)))


def _fresh_primitive(name):
    primitive = Primitive(name)
    primitive.def_impl(lambda x: x * 2.0)
    primitive.def_abstract_eval(lambda x: x)
    return primitive


def test_unknown_primitive_names_itself_the_source_line_and_defvjp():
    doubled = _fresh_primitive("fungrad_test_doubled")

    def f(x):
        return doubled.bind(x) * x  # the line the error names

    with pytest.raises(registry.UnsupportedPrimitiveError) as info:
        graph.grad(f)(1.0)
    message = str(info.value)
    assert "fungrad_test_doubled" in message and "fungrad.graph.defvjp" in message
    assert "test_graph_engine.py:" in message and "f)" in message
    assert isinstance(info.value, NotImplementedError)


def test_unknown_primitive_off_the_differentiated_path_needs_no_rule():
    doubled = _fresh_primitive("fungrad_test_constant_only")
    g = graph.grad(lambda x, c: x * doubled.bind(c))(jnp.float64(2.0), jnp.float64(3.0))
    assert float(g) == 6.0


def test_unknown_primitive_in_aux_or_unused_outputs_needs_no_rule():
    doubled = _fresh_primitive("fungrad_test_aux_only")

    def f(x):
        return x * x, doubled.bind(x)

    (value, aux), g = graph.value_and_grad(f, has_aux=True)(jnp.float64(3.0))
    assert (float(value), float(aux), float(g)) == (9.0, 6.0, 6.0)
    assert float(graph.grad(lambda x: x * 2.0 + 0.0 * f(x)[0])(1.0)) == 2.0


def test_user_rule_registered_with_defvjp_is_used():
    doubled = _fresh_primitive("fungrad_test_user_rule")
    graph.defvjp(doubled, lambda g, ans, x: (2.0 * g,))
    assert float(graph.grad(lambda x: doubled.bind(x) * x)(jnp.float64(3.0))) == 12.0


def test_defvjp_refuses_a_non_primitive_or_non_callable():
    with pytest.raises(TypeError, match="primitive"):
        graph.defvjp("sin", lambda g, ans, x: (g,))
    with pytest.raises(TypeError, match="callable"):
        graph.defvjp(_fresh_primitive("fungrad_test_no_rule"), None)


def test_rule_returning_wrong_shape_or_count_is_reported():
    wrong_shape = _fresh_primitive("fungrad_test_wrong_shape")
    graph.defvjp(wrong_shape, lambda g, ans, x: (jnp.ones(7),))
    with pytest.raises(ValueError, match="fungrad_test_wrong_shape.*shape"):
        graph.grad(lambda x: wrong_shape.bind(x))(1.0)
    wrong_count = _fresh_primitive("fungrad_test_wrong_count")
    graph.defvjp(wrong_count, lambda g, ans, x: (g, g))
    with pytest.raises(ValueError, match="fungrad_test_wrong_count.*2 cotangents for 1"):
        graph.grad(lambda x: wrong_count.bind(x))(1.0)


# --- Transformations: jit, vmap, and the engine differentiating its own backward pass ------
def _mlp_loss(params, x, y):
    h = jnp.tanh(x @ params["w1"] + params["b1"])
    logits = jax.nn.relu(h @ params["w2"]) + params["b2"]
    return -jnp.sum(jax.nn.log_softmax(logits) * y)


def _mlp_problem(batch=4, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    params = {
        "w1": jax.random.normal(k[0], (3, 5)),
        "b1": jax.random.normal(k[1], (5,)),
        "w2": jax.random.normal(k[2], (5, 2)),
        "b2": jnp.zeros(2),
    }
    x = jax.random.normal(k[3], (batch, 3))
    y = jax.nn.one_hot(jnp.arange(batch) % 2, 2)
    return params, x, y


def _assert_trees_close(mine, theirs, rtol=1e-10):
    assert jax.tree_util.tree_structure(mine) == jax.tree_util.tree_structure(theirs)
    jax.tree_util.tree_map(lambda a, b: _close(a, b, rtol), mine, theirs)


@pytest.mark.slow
def test_grad_under_jit_equals_jax_and_compiles_once(count_compilations):
    params, x, y = _mlp_problem()
    step = jax.jit(graph.value_and_grad(_mlp_loss))
    _assert_trees_close(step(params, x, y), jax.jit(jax.value_and_grad(_mlp_loss))(params, x, y))
    other_x = x + 1.0
    with count_compilations() as compiled:
        step(params, other_x, y)
    assert compiled == []


@pytest.mark.slow
def test_per_sample_gradients_under_vmap():
    params, x, y = _mlp_problem(batch=5)
    mine = jax.jit(jax.vmap(graph.grad(_mlp_loss), in_axes=(None, 0, 0)))(params, x, y)
    theirs = jax.jit(jax.vmap(jax.grad(_mlp_loss), in_axes=(None, 0, 0)))(params, x, y)
    _assert_trees_close(mine, theirs)
    jitted = jax.jit(jax.vmap(graph.grad(_mlp_loss, argnums=1), in_axes=(None, 0, 0)))
    _assert_trees_close(
        jitted(params, x, y),
        jax.jit(jax.vmap(jax.grad(_mlp_loss, argnums=1), in_axes=(None, 0, 0)))(params, x, y),
    )


def test_vmap_without_jit():
    f = lambda w, x: jnp.sin(w * x) * w  # noqa: E731
    xs = jnp.linspace(-1.0, 1.0, 3)
    _close(
        jax.vmap(graph.grad(f), in_axes=(None, 0))(0.7, xs),
        jax.vmap(jax.grad(f), (None, 0))(0.7, xs),
    )


@pytest.mark.slow
def test_vmap_over_parameters_closed_over_by_the_model():
    params, x, y = _mlp_problem()
    stacked = jax.tree_util.tree_map(lambda p: jnp.stack([p, 2.0 * p]), params)
    mine = jax.jit(jax.vmap(graph.grad(_mlp_loss), in_axes=(0, None, None)))(stacked, x, y)
    theirs = jax.jit(jax.vmap(jax.grad(_mlp_loss), in_axes=(0, None, None)))(stacked, x, y)
    _assert_trees_close(mine, theirs)


def test_second_derivative_of_the_lesson_graph():
    f = lambda x: x**2 * jnp.sin(x)  # noqa: E731
    x = jnp.float64(1.3)
    expected = 2 * np.sin(x) + 4 * x * np.cos(x) - x**2 * np.sin(x)
    _close(graph.grad(graph.grad(f))(x), expected)
    _close(graph.grad(graph.grad(graph.grad(f)))(x), jax.grad(jax.grad(jax.grad(f)))(x))


def _hvp_graph(f, x, v):
    return graph.grad(lambda x: jnp.vdot(graph.grad(f)(x), v))(x)


def _hvp_jax(f, x, v):
    return jax.jvp(jax.grad(f), (x,), (v,))[1]


HVP_FUNCTIONS = {
    "elementwise": lambda x: jnp.sum(jnp.sin(x) * x**3 + jnp.exp(-x * x) / (1 + x * x)),
    "kinks": lambda x: jnp.sum(jnp.maximum(x, 0.1) * jnp.clip(x, -0.5, 0.5) * jax.nn.relu(x)),
    "softmax": lambda x: jnp.sum(jax.nn.softmax(x) * jnp.arange(6.0)) + jax.nn.logsumexp(x * x),
    "cond": lambda x: lax.cond(
        x[0] > 0, lambda x: jnp.sum(jnp.sin(x) * x), lambda x: jnp.sum(x**4), x
    ),
    "scan": lambda x: jnp.sum(
        lax.scan(lambda c, xi: (jnp.tanh(c * xi + c), jnp.sin(c * xi)), 0.3, x)[1]
    ),
}


@pytest.mark.parametrize("name", sorted(HVP_FUNCTIONS))
@pytest.mark.slow
def test_hessian_vector_products_equal_jax(name):
    f = HVP_FUNCTIONS[name]
    x = jax.random.normal(jax.random.PRNGKey(0), (6,))
    v = jax.random.normal(jax.random.PRNGKey(1), (6,))
    mine = jax.jit(lambda x, v: _hvp_graph(f, x, v))(x, v)
    _close(mine, jax.jit(lambda x, v: _hvp_jax(f, x, v))(x, v), rtol=1e-9)


@pytest.mark.slow
def test_hessian_vector_product_of_an_mlp_loss_under_jit():
    params, x, y = _mlp_problem()
    v = jax.tree_util.tree_map(jnp.ones_like, params)

    def hvp(loss, grad):
        return jax.jit(grad(lambda p: _tree_vdot(grad(loss)(p, x, y), v)))(params)

    _assert_trees_close(hvp(_mlp_loss, graph.grad), hvp(_mlp_loss, jax.grad), rtol=1e-9)


def _tree_vdot(a, b):
    return sum(
        jnp.vdot(p, q)
        for p, q in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )

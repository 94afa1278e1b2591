"""The hand-written backprop engine, held equal to JAX's own autodiff.

The oracle is always ``jax.value_and_grad`` (or ``jax.grad``, ``jax.jvp``, ``jax.jacrev``) of
the same objective written with :func:`fungrad.mlp.apply`: the mean over the batch of the
per-sample loss. Float64 comparisons use about 1e-10 relative tolerance, float32 ones float32
tolerances, and bfloat16 and float16 ones (mixed precision) a few of that dtype's ``eps``. Computations run under ``jax.jit``: compiling one program per case is far cheaper
on CPU than compiling every primitive for eager dispatch.
"""

import ast
import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import fungrad
from fungrad import activations, backprop, losses, mlp

# Snapshots taken at import, before any test registers an activation of its own.
ACTIVATIONS = activations.activation_names()
LOSSES = losses.loss_names()
# elu (alpha = 1) has a continuous first derivative, so finite differences suit it too.
SMOOTH = ("identity", "tanh", "sigmoid", "softplus", "gelu", "elu")


# --------------------------------------------------------------------------- helpers


def _params(rng, sizes, dtype=np.float64):
    return [
        {
            "w": jnp.asarray(rng.normal(size=(n_in, n_out)) / np.sqrt(n_in), dtype),
            "b": jnp.asarray(0.1 * rng.normal(size=n_out), dtype),
        }
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def _targets(rng, loss, batch, k, dtype=np.float64, integer_labels=True):
    """Targets in the form ``loss`` takes: labels or probabilities, 0/1, or real values."""
    if loss == "softmax_cross_entropy":
        if integer_labels:
            return jnp.asarray(rng.integers(0, k, size=batch))
        p = rng.uniform(0.05, 1.0, size=(batch, k))
        return jnp.asarray(p / p.sum(-1, keepdims=True), dtype)
    if loss == "sigmoid_binary_cross_entropy":
        return jnp.asarray(rng.integers(0, 2, size=(batch, k)), dtype)
    return jnp.asarray(rng.normal(size=(batch, k)), dtype)


def _objective(params, x, y, *, activation, output_activation, loss):
    """``L(w) = 1/N sum_i l(F(x_i; w), y_i)``, written for JAX's autodiff."""
    y_hat = mlp.apply(params, x, activation=activation, output_activation=output_activation)
    return jnp.mean(losses.get_loss(loss).fn(y_hat, y))


@functools.partial(jax.jit, static_argnames=("activation", "output_activation", "loss"))
@functools.partial(jax.jit, static_argnames=("activation", "output_activation", "loss"))
def _engine_and_oracle(params, x, y, *, activation, output_activation, loss):
    """The engine's value and gradient, and JAX's, in one compiled program."""
    names = {"activation": activation, "output_activation": output_activation, "loss": loss}
    engine = backprop.value_and_grad(params, x, y, **names)
    oracle = jax.value_and_grad(functools.partial(_objective, **names))(params, x, y)
    return engine, oracle


def assert_trees_close(got, want, rtol):
    """Leaves equal up to ``rtol``, relative to the largest entry of ``want`` near zero."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    got_leaves, want_leaves = jax.tree.leaves(got), jax.tree.leaves(want)
    scale = max(float(np.max(np.abs(leaf), initial=0.0)) for leaf in want_leaves)
    for g, w in zip(got_leaves, want_leaves, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * max(scale, 1e-6))


# --------------------------------------------------------------------------- property tests


@st.composite
def problems(draw):
    depth = draw(st.integers(1, 4))
    return {
        "sizes": draw(st.lists(st.integers(1, 32), min_size=depth + 1, max_size=depth + 1)),
        "batch": draw(st.integers(1, 16)),
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "output_activation": draw(st.sampled_from(ACTIVATIONS)),
        "loss": draw(st.sampled_from(LOSSES)),
        "integer_labels": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _draw_arrays(problem, dtype):
    rng = np.random.default_rng(problem["seed"])
    sizes, batch = problem["sizes"], problem["batch"]
    params = _params(rng, sizes, dtype)
    x = jnp.asarray(rng.normal(size=(batch, sizes[0])), dtype)
    y = _targets(rng, problem["loss"], batch, sizes[-1], dtype, problem["integer_labels"])
    return params, x, y


def _names(problem):
    return {key: problem[key] for key in ("activation", "output_activation", "loss")}


@pytest.mark.slow
@settings(max_examples=30)
@given(problems())
def test_value_and_grad_matches_jax_float64(problem):
    params, x, y = _draw_arrays(problem, np.float64)
    (value, grads), (want_value, want_grads) = _engine_and_oracle(params, x, y, **_names(problem))
    assert value.dtype == jnp.float64
    np.testing.assert_allclose(value, want_value, rtol=1e-10)
    assert_trees_close(grads, want_grads, rtol=1e-10)


@pytest.mark.slow
@settings(max_examples=10)
@given(problems())
def test_value_and_grad_matches_jax_float32(problem):
    params, x, y = _draw_arrays(problem, np.float32)
    (value, grads), (want_value, want_grads) = _engine_and_oracle(params, x, y, **_names(problem))
    assert value.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(grads))
    np.testing.assert_allclose(value, want_value, rtol=1e-5)
    assert_trees_close(grads, want_grads, rtol=2e-4)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
@settings(max_examples=10)
@given(problem=problems())
def test_value_and_grad_matches_jax_in_low_precision(dtype, problem):
    """Mixed precision: the model in ``dtype``, the loss and the batch mean in float32.

    The forward passes are the same operations, so the float32 losses agree up to the order
    of float32 additions. Backward, each layer rounds ``delta`` to ``dtype`` twice (after the
    activation-derivative product and after the matrix product), each time within ``eps / 2``
    of the exact value, and the engine and JAX may round differently (JAX differentiates
    ``gelu`` through ``erf``, sums the bias gradient in ``dtype``): the two can drift apart by
    about ``eps`` per layer, measured against the largest gradient entry. The tolerance is
    twice that, ``2 * depth * eps`` (``eps = 2^-7`` for bfloat16, ``2^-10`` for float16); the
    largest drift over the drawn examples is about ``1.6 eps``.
    """
    params, x, y = _draw_arrays(problem, dtype)
    (value, grads), (want_value, want_grads) = _engine_and_oracle(params, x, y, **_names(problem))
    assert value.dtype == want_value.dtype == jnp.float32
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(grads))
    np.testing.assert_allclose(value, want_value, rtol=4 * np.finfo(np.float32).eps)
    depth = len(problem["sizes"]) - 1
    eps = float(jnp.finfo(dtype).eps)
    as_float64 = functools.partial(jax.tree.map, lambda leaf: np.asarray(leaf, np.float64))
    assert_trees_close(as_float64(grads), as_float64(want_grads), rtol=2 * depth * eps)


def _switching(index, names, fallback_name):
    """An Activation that runs ``names[index]`` with ``index`` traced: one program for all."""
    table = [activations.get_activation(name) for name in names]
    return fungrad.Activation(
        fallback_name,
        lambda z: jax.lax.switch(index, [a.fn for a in table], z),
        lambda z: jax.lax.switch(index, [a.derivative for a in table], z),
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loss", "integer_labels"),
    [(name, True) for name in LOSSES] + [("softmax_cross_entropy", False)],
)
def test_every_activation_pair_with_every_loss(loss, integer_labels):
    """All hidden x output activations, one compiled program per loss (indices are traced)."""
    rng = np.random.default_rng(11)
    sizes, batch = [3, 5, 4], 5
    params = _params(rng, sizes)
    x = jnp.asarray(rng.normal(size=(batch, 3)))
    y = _targets(rng, loss, batch, sizes[-1], integer_labels=integer_labels)

    @jax.jit
    def engine_and_oracle(params, hidden_index, output_index):
        names = {
            "activation": _switching(hidden_index, ACTIVATIONS, "hidden"),
            "output_activation": _switching(output_index, ACTIVATIONS, "output"),
            "loss": loss,
        }
        engine = backprop.value_and_grad(params, x, y, **names)
        oracle = jax.value_and_grad(functools.partial(_objective, **names))(params, x, y)
        return engine, oracle

    for hidden_index in range(len(ACTIVATIONS)):
        for output_index in range(len(ACTIVATIONS)):
            (value, grads), (want_value, want_grads) = engine_and_oracle(
                params, hidden_index, output_index
            )
            np.testing.assert_allclose(value, want_value, rtol=1e-12)
            assert_trees_close(grads, want_grads, rtol=1e-10)


# --------------------------------------------------------------------------- VJP rules


@pytest.mark.parametrize("x_shape", [(7, 4), (4,)], ids=["batch", "one_sample"])
def test_dense_vjp_inner_product_identity(x_shape):
    """``<t, J^T c> == <J t, c>`` for ``z = x @ w + b``; a non-square ``w`` exposes transposes."""
    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=x_shape), rng.normal(size=(4, 3)), rng.normal(size=3)
    tx, tw, tb = rng.normal(size=x.shape), rng.normal(size=w.shape), rng.normal(size=b.shape)
    c = rng.normal(size=x_shape[:-1] + (3,))

    @jax.jit
    def evaluate(x, w, b, tx, tw, tb, c):
        _, jt = jax.jvp(lambda x, w, b: x @ w + b, (x, w, b), (tx, tw, tb))
        return jt, backprop.dense_vjp(x, w, c)

    jt, (dx, dw, db) = evaluate(x, w, b, tx, tw, tb, c)
    assert (dx.shape, dw.shape, db.shape) == (x.shape, w.shape, b.shape)
    inner = jnp.vdot(tx, dx) + jnp.vdot(tw, dw) + jnp.vdot(tb, db)
    np.testing.assert_allclose(inner, jnp.vdot(jt, c), rtol=1e-12)


def test_dense_vjp_formulas():
    rng = np.random.default_rng(6)
    x, w, delta = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    dx, dw, db = backprop.dense_vjp(x, w, delta)
    np.testing.assert_allclose(dx, delta @ w.T, rtol=1e-14)
    np.testing.assert_allclose(dw, sum(np.outer(x[i], delta[i]) for i in range(5)), rtol=1e-12)
    np.testing.assert_allclose(db, delta.sum(0), rtol=1e-14)


# --------------------------------------------------------------------------- custom_vjp path


def _smooth_problem(seed=0):
    rng = np.random.default_rng(seed)
    params = _params(rng, [3, 5, 4, 2])
    return params, jnp.asarray(rng.normal(size=(6, 3))), jnp.asarray(rng.normal(size=(6, 2)))


@pytest.mark.slow
@pytest.mark.parametrize("activation", SMOOTH)
def test_custom_vjp_apply_passes_check_grads(activation):
    params, x, _ = _smooth_problem()
    apply = jax.jit(functools.partial(backprop.apply, activation=activation))
    check_grads(apply, (params, x), order=1, modes=["rev"])


@pytest.mark.slow
@pytest.mark.parametrize("activation", SMOOTH + ("relu", "leaky_relu"))
def test_custom_vjp_apply_equals_jax_grad_through_mlp_apply(activation):
    params, x, c = _smooth_problem(1)

    def through(apply):
        return jax.grad(
            lambda p, x: jnp.sum(c * apply(p, x, activation=activation, output_activation="tanh")),
            argnums=(0, 1),
        )

    got, want = jax.jit(lambda p, x: (through(backprop.apply)(p, x), through(mlp.apply)(p, x)))(
        params, x
    )
    assert_trees_close(got, want, rtol=1e-10)
    np.testing.assert_allclose(
        backprop.apply(params, x, activation=activation),
        mlp.apply(params, x, activation=activation),
        rtol=1e-14,
    )


def test_custom_vjp_apply_runs_fungrads_rules():
    """``jax.grad`` of ``backprop.apply`` reads the hand-written derivative, not JAX's own."""
    params, x, _ = _smooth_problem(2)
    assert "custom_vjp_call" in str(jax.make_jaxpr(backprop.apply)(params, x))
    doubled = fungrad.Activation("doubled", jnp.tanh, lambda z: 2 * (1 - jnp.tanh(z) ** 2))

    def grad_x(apply, activation):
        return jax.jit(jax.grad(lambda x: jnp.sum(apply(params, x, activation=activation))))(x)

    np.testing.assert_allclose(grad_x(mlp.apply, doubled), grad_x(mlp.apply, "tanh"), rtol=1e-14)
    assert not np.allclose(grad_x(backprop.apply, doubled), grad_x(backprop.apply, "tanh"))


# --------------------------------------------------------------------------- the lesson's facts


def test_gradient_of_w_dot_x_is_w():
    w = jnp.array([[0.5], [-2.0], [3.0]])
    params = [{"w": w, "b": jnp.zeros(1)}]
    x = jnp.array([1.0, 4.0, -1.0])
    grad = jax.grad(lambda x: backprop.apply(params, x, activation="identity")[0])(x)
    np.testing.assert_allclose(grad, w[:, 0], rtol=1e-15)


def test_gradient_of_quadratic_form_is_a_plus_a_transpose_x():
    rng = np.random.default_rng(8)
    a = jnp.asarray(rng.normal(size=(4, 4)))
    assert not np.allclose(a, a.T)
    x = jnp.asarray(rng.normal(size=4))
    params = [{"w": a.T, "b": jnp.zeros(4)}]  # the layer computes x @ w = A x

    def quadratic_form(x):
        return x @ backprop.apply(params, x, activation="identity")

    np.testing.assert_allclose(quadratic_form(x), x @ a @ x, rtol=1e-14)
    np.testing.assert_allclose(jax.grad(quadratic_form)(x), (a + a.T) @ x, rtol=1e-13)


def test_jacobian_of_a_x_is_a():
    rng = np.random.default_rng(9)
    a = jnp.asarray(rng.normal(size=(2, 5)))  # non-square: a transposition cannot pass
    x = jnp.asarray(rng.normal(size=5))
    params = [{"w": a.T, "b": jnp.zeros(2)}]
    jacobian = jax.jacrev(lambda x: backprop.apply(params, x, activation="identity"))(x)
    assert jacobian.shape == (2, 5)
    np.testing.assert_allclose(jacobian, a, rtol=1e-15)


# --------------------------------------------------------------------------- per-sample gradients


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loss", "output_activation"),
    [("mse", "identity"), ("softmax_cross_entropy", "identity"), ("l2", "sigmoid")],
)
def test_per_sample_grads(loss, output_activation):
    rng = np.random.default_rng(10)
    params = _params(rng, [3, 5, 4])
    x = jnp.asarray(rng.normal(size=(6, 3)))
    y = _targets(rng, loss, 6, 4)
    names = {"activation": "tanh", "output_activation": output_activation, "loss": loss}
    values, per_sample = jax.jit(functools.partial(fungrad.per_sample_value_and_grad, **names))(
        params, x, y
    )
    assert values.shape == (6,)
    assert all(leaf.shape[0] == 6 for leaf in jax.tree.leaves(per_sample))

    batch_value, batch_grads = jax.jit(functools.partial(fungrad.value_and_grad, **names))(
        params, x, y
    )
    np.testing.assert_allclose(jnp.mean(values), batch_value, rtol=1e-12)
    assert_trees_close(jax.tree.map(lambda g: g.mean(0), per_sample), batch_grads, rtol=1e-10)

    one_sample = jax.jit(functools.partial(fungrad.value_and_grad, **names))
    for i in range(6):
        value_i, grads_i = one_sample(params, x[i], y[i])
        np.testing.assert_allclose(values[i], value_i, rtol=1e-12)
        assert_trees_close(jax.tree.map(lambda g, i=i: g[i], per_sample), grads_i, rtol=1e-10)


def test_per_sample_rejects_labels_out_of_range():
    rng = np.random.default_rng(12)
    params = _params(rng, [3, 4])
    with pytest.raises(ValueError, match=r"y: class labels must lie in \[0, 4\)"):
        fungrad.per_sample_value_and_grad(
            params, np.ones((3, 3)), np.array([0, 4, 1]), loss="softmax_cross_entropy"
        )
    with pytest.raises(ValueError, match=r"x: expected a batch \(batch, 3\)"):
        fungrad.per_sample_value_and_grad(params, np.ones(3), np.zeros(4))


def test_one_sample_equals_a_batch_of_one():
    rng = np.random.default_rng(13)
    params = _params(rng, [3, 5, 2])
    x, y = jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal(size=2))
    run = jax.jit(functools.partial(fungrad.value_and_grad, activation="gelu", loss="l2"))
    value, grads = run(params, x, y)
    want_value, want_grads = run(params, x[None], y[None])
    np.testing.assert_allclose(value, want_value, rtol=1e-14)
    assert_trees_close(grads, want_grads, rtol=1e-14)


def test_zero_weights_drop_samples():
    """A padded sample with weight 0 changes neither the loss nor the gradient."""
    rng = np.random.default_rng(14)
    params = _params(rng, [3, 5, 2])
    x, y = jnp.asarray(rng.normal(size=(6, 3))), jnp.asarray(rng.normal(size=(6, 2)))
    weights = jnp.array([1.0, 1, 1, 1, 0, 0])
    run = jax.jit(functools.partial(fungrad.value_and_grad, activation="tanh", loss="mse"))
    weighted = run(params, x, y, weights=weights)
    want = run(params, x[:4], y[:4])
    np.testing.assert_allclose(weighted[0], want[0], rtol=1e-12)
    assert_trees_close(weighted[1], want[1], rtol=1e-10)
    with pytest.raises(ValueError, match=r"weights: expected shape \(6,\), got \(5,\)"):
        fungrad.value_and_grad(params, x, y, weights=jnp.ones(5))


# --------------------------------------------------------------------------- jit, vmap, dtypes


@pytest.mark.slow
def test_jit_equals_eager():
    rng = np.random.default_rng(15)
    params = _params(rng, [3, 5, 4])
    x, y = jnp.asarray(rng.normal(size=(6, 3))), _targets(rng, "softmax_cross_entropy", 6, 4)
    names = {"activation": "elu", "output_activation": "identity", "loss": "softmax_cross_entropy"}
    eager = fungrad.value_and_grad(params, x, y, **names)
    jitted = jax.jit(functools.partial(fungrad.value_and_grad, **names))(params, x, y)
    np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-14)
    assert_trees_close(jitted[1], eager[1], rtol=1e-13)


@pytest.mark.slow
def test_vmap_over_initial_keys_equals_one_at_a_time():
    keys = jax.random.split(jax.random.key(16), 3)
    inits = [mlp.init(key, [3, 5, 4, 2], dtype=jnp.float64) for key in keys]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *inits)
    rng = np.random.default_rng(16)
    x, y = jnp.asarray(rng.normal(size=(6, 3))), _targets(rng, "sigmoid_binary_cross_entropy", 6, 2)
    run = functools.partial(
        fungrad.value_and_grad, activation="relu", loss="sigmoid_binary_cross_entropy"
    )
    values, grads = jax.jit(jax.vmap(run, in_axes=(0, None, None)))(stacked, x, y)
    one_at_a_time = jax.jit(run)
    for i, params in enumerate(inits):
        value_i, grads_i = one_at_a_time(params, x, y)
        np.testing.assert_allclose(values[i], value_i, rtol=1e-13)
        assert_trees_close(jax.tree.map(lambda g, i=i: g[i], grads), grads_i, rtol=1e-12)


def test_vmap_of_grad_through_custom_vjp_apply():
    rng = np.random.default_rng(17)
    params = _params(rng, [3, 4, 2])
    xs = jnp.asarray(rng.normal(size=(5, 3)))

    def grad_x(x):
        return jax.grad(lambda x: jnp.sum(backprop.apply(params, x, activation="softplus")))(x)

    batched = jax.jit(jax.vmap(grad_x))(xs)
    looped = jnp.stack([jax.jit(grad_x)(x) for x in xs])
    np.testing.assert_allclose(batched, looped, rtol=1e-13)


def test_second_call_with_new_values_does_not_recompile(count_compilations):
    rng = np.random.default_rng(18)
    names = {"activation": "tanh", "loss": "softmax_cross_entropy"}
    run = jax.jit(functools.partial(fungrad.value_and_grad, **names))
    inputs = [
        (
            _params(rng, [3, 5, 4]),
            jnp.asarray(rng.normal(size=(6, 3))),
            jnp.asarray([0, 1, 2, 3, 0, 1]),
        )
        for _ in range(2)
    ]
    first = run(*inputs[0])
    with count_compilations() as compiles:
        second = run(*inputs[1])
    assert compiles == []
    assert run._cache_size() == 1
    assert not np.allclose(first[0], second[0])
    run(inputs[0][0], inputs[0][1][:4], inputs[0][2][:4])  # a new shape does compile
    assert run._cache_size() == 2


@pytest.mark.slow
def test_gradients_have_the_dtype_of_the_parameters():
    """float32 parameters fed float64 data get float32 gradients, as from ``jax.grad``."""
    rng = np.random.default_rng(19)
    params = _params(rng, [3, 5, 2], np.float32)
    x, y = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 2)))
    names = {"activation": "tanh", "output_activation": "identity", "loss": "l2"}
    (_, grads), (_, want) = _engine_and_oracle(params, x, y, **names)
    assert [g.dtype for g in jax.tree.leaves(grads)] == [jnp.float32] * 4
    assert_trees_close(grads, want, rtol=1e-5)

    def custom(p, x):
        return jnp.sum(backprop.apply(p, x, activation="tanh") ** 2)

    grad_p, grad_x = jax.jit(jax.grad(custom, argnums=(0, 1)))(params, x)
    assert [g.dtype for g in jax.tree.leaves(grad_p)] == [jnp.float32] * 4
    assert grad_x.dtype == jnp.float64


@pytest.mark.slow
def test_tuple_of_layers_gives_a_tuple_of_gradients():
    rng = np.random.default_rng(20)
    params = _params(rng, [3, 4, 2])
    x, y = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 2)))
    run = jax.jit(functools.partial(fungrad.value_and_grad, activation="tanh"))
    _, from_tuple = run(tuple(params), x, y)
    _, from_list = run(params, x, y)
    assert isinstance(from_tuple, tuple)
    assert_trees_close(list(from_tuple), from_list, rtol=1e-15)
    grad = jax.grad(lambda p: jnp.sum(backprop.apply(p, x) ** 2))(tuple(params))
    assert isinstance(grad, tuple)


# --------------------------------------------------------------------------- hand-written


AUTODIFF = {"grad", "vjp", "jvp", "jacfwd", "jacrev", "value_and_grad", "hessian", "linearize"}


def _autodiff_uses(source: str) -> list[str]:
    """Every ``jax.<autodiff>`` reference and ``from jax import <autodiff>`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "jax"
            and node.attr in AUTODIFF
        ):
            found.append(f"jax.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module in ("jax", "jax.api"):
            found += [f"from jax import {a.name}" for a in node.names if a.name in AUTODIFF]
    return found


def test_the_checker_finds_autodiff_calls():
    assert _autodiff_uses("import jax\ng = jax.grad(f)(x)") == ["jax.grad"]
    assert _autodiff_uses("from jax import vjp, numpy") == ["from jax import vjp"]
    assert _autodiff_uses("import jax\njax.vmap(f)(x)\njax.custom_vjp") == []


def test_backprop_module_does_not_use_jax_autodiff():
    assert _autodiff_uses(inspect.getsource(backprop)) == []

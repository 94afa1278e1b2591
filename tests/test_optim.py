"""Update rules: each trajectory equals its formula, computed by hand, on a small quadratic.

``L(w) = 1/2 w^T A w - b^T w`` in float64, so ``grad L(w) = A w - b``; every step runs jitted.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fungrad import optim

A = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, -0.3], [0.0, -0.3, 1.0]])
B = np.array([1.0, -2.0, 0.5])
W0 = np.array([0.7, -0.4, 1.3])
STEPS = 6


def _gradient(w):
    return A @ w - B


def _trajectory(optimizer, steps=STEPS):
    """Run ``optimizer`` on the quadratic as fit does: a jitted update, then apply_updates."""

    @jax.jit
    def step(w, opt_state):
        updates, opt_state = optimizer.update(jnp.asarray(A) @ w - jnp.asarray(B), opt_state, w)
        return optax.apply_updates(w, updates), opt_state

    w = jnp.asarray(W0, dtype=jnp.float64)
    opt_state = optimizer.init(w)
    trajectory = []
    for _ in range(steps):
        w, opt_state = step(w, opt_state)
        trajectory.append(np.asarray(w))
    return np.stack(trajectory)


def _by_hand(rule, steps=STEPS):
    """``rule(w, m, g, t) -> (w, m)`` iterated from ``W0`` with ``m_0 = 0`` in NumPy float64."""
    w, m = W0.copy(), np.zeros_like(W0)
    trajectory = []
    for t in range(1, steps + 1):
        w, m = rule(w, m, _gradient(w), t)
        trajectory.append(w)
    return np.stack(trajectory)


def test_x64_is_enabled():
    assert jnp.asarray(W0).dtype == jnp.float64


@pytest.mark.parametrize("factory", [optim.gd, optim.sgd])
def test_gd_and_sgd_follow_w_minus_lr_g(factory):
    lr = 0.2
    expected = _by_hand(lambda w, m, g, t: (w - lr * g, m))
    np.testing.assert_allclose(_trajectory(factory(lr)), expected, rtol=1e-13, atol=1e-14)


def test_gd_docstring_step():
    opt = optim.gd(0.1)
    w = jnp.array(1.0, jnp.float64)
    updates, _ = opt.update(2 * w, opt.init(w))
    assert float(optax.apply_updates(w, updates)) == pytest.approx(0.8, rel=1e-15)


def _heavy_ball(lr, beta):
    def rule(w, m, g, t):
        m = beta * m + g
        return w - lr * m, m

    return rule


def _ema(lr, beta):
    def rule(w, m, g, t):
        m = beta * m + (1 - beta) * g
        return w - lr * m, m

    return rule


def _nesterov(lr, beta):
    def rule(w, m, g, t):
        m = beta * m + g
        return w - lr * (g + beta * m), m

    return rule


@pytest.mark.parametrize(
    ("variant", "rule"), [("heavy_ball", _heavy_ball), ("ema", _ema), ("nesterov", _nesterov)]
)
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
@pytest.mark.slow
def test_momentum_variants_follow_their_formula(variant, rule, beta):
    lr = 0.15
    actual = _trajectory(optim.momentum(lr, beta, variant=variant))
    np.testing.assert_allclose(actual, _by_hand(rule(lr, beta)), rtol=1e-13, atol=1e-14)


def test_momentum_variants_differ():
    """The three formulas give three different trajectories (the tests above tell them apart)."""
    finals = [
        _trajectory(optim.momentum(0.15, 0.9, variant=v))[-1] for v in optim.MOMENTUM_VARIANTS
    ]
    for i in range(len(finals)):
        for j in range(i):
            assert np.max(np.abs(finals[i] - finals[j])) > 1e-3


def test_momentum_defaults_to_heavy_ball_with_beta_point_nine():
    np.testing.assert_allclose(
        _trajectory(optim.momentum(0.15)), _by_hand(_heavy_ball(0.15, 0.9)), rtol=1e-13
    )


@pytest.mark.parametrize("nesterov", [False, True])
def test_heavy_ball_and_nesterov_equal_optax_sgd_with_momentum(nesterov):
    lr, beta = 0.1, 0.8
    ours = optim.momentum(lr, beta, variant="nesterov" if nesterov else "heavy_ball")
    theirs = optax.sgd(lr, momentum=beta, nesterov=nesterov)
    np.testing.assert_allclose(_trajectory(ours), _trajectory(theirs), rtol=1e-14, atol=1e-15)


def test_adam_equals_optax_adam_and_the_formula():
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-6
    actual = _trajectory(optim.adam(lr, b1, b2, eps))
    np.testing.assert_allclose(
        actual, _trajectory(optax.adam(lr, b1=b1, b2=b2, eps=eps)), rtol=1e-14, atol=1e-15
    )

    v = np.zeros_like(W0)

    def rule(w, m, g, t):
        nonlocal v
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        return w - lr * m_hat / (np.sqrt(v_hat) + eps), m

    np.testing.assert_allclose(actual, _by_hand(rule), rtol=1e-12, atol=1e-14)


def test_adam_default_hyperparameters_equal_optax():
    np.testing.assert_allclose(
        _trajectory(optim.adam(0.01)), _trajectory(optax.adam(0.01)), rtol=1e-14
    )


def test_a_schedule_is_accepted_and_followed():
    schedule = optax.exponential_decay(0.2, transition_steps=1, decay_rate=0.5)
    expected = _by_hand(lambda w, m, g, t: (w - 0.2 * 0.5 ** (t - 1) * g, m))
    # optax evaluates the schedule in float32 (its step count is int32).
    np.testing.assert_allclose(_trajectory(optim.sgd(schedule)), expected, rtol=1e-6)
    for factory in (optim.gd, optim.momentum, optim.adam):
        factory(schedule)


@pytest.mark.parametrize("variant", optim.MOMENTUM_VARIANTS)
def test_momentum_with_a_schedule_runs(variant):
    schedule = optax.exponential_decay(0.1, transition_steps=1, decay_rate=0.9)
    trajectory = _trajectory(optim.momentum(schedule, 0.5, variant=variant))
    assert np.all(np.isfinite(trajectory))


@pytest.mark.slow
def test_a_traced_learning_rate_works_inside_jit():
    g = jnp.asarray(_gradient(W0))
    w = jnp.asarray(W0)

    def sgd_update(lr):
        opt = optim.sgd(lr)
        return opt.update(g, opt.init(w), w)[0]

    for lr in (0.1, 0.3):
        np.testing.assert_allclose(jax.jit(sgd_update)(lr), -lr * np.asarray(g), rtol=1e-15)

    def momentum_update(lr, beta):
        opt = optim.momentum(lr, beta, variant="nesterov")
        return opt.update(g, opt.init(w), w)[0]

    # First nesterov step from m_0 = 0: m = g, update = -lr (g + beta g).
    np.testing.assert_allclose(
        jax.jit(momentum_update)(0.1, 0.5), -0.1 * 1.5 * np.asarray(g), rtol=1e-15
    )

    def adam_update(lr):
        opt = optim.adam(lr)
        return opt.update(g, opt.init(w), w)[0]

    np.testing.assert_allclose(
        jax.jit(adam_update)(0.01),
        optax.adam(0.01).update(g, optax.adam(0.01).init(w), w)[0],
        rtol=1e-14,
    )


def test_a_concrete_array_learning_rate_is_accepted():
    np.testing.assert_allclose(
        _trajectory(optim.sgd(jnp.asarray(0.2))),
        _by_hand(lambda w, m, g, t: (w - 0.2 * g, m)),
        rtol=1e-13,
    )


FACTORIES = {
    "gd": optim.gd,
    "sgd": optim.sgd,
    "momentum": optim.momentum,
    "adam": optim.adam,
}


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("lr", [0.0, -0.1, math.nan, math.inf, -math.inf])
def test_bad_learning_rate_is_a_value_error_naming_it(name, lr):
    with pytest.raises(ValueError, match="learning_rate"):
        FACTORIES[name](lr)


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("lr", ["fast", None, [0.1, 0.2]])
def test_non_numeric_learning_rate_is_a_type_error_naming_it(name, lr):
    with pytest.raises(TypeError, match="learning_rate"):
        FACTORIES[name](lr)


@pytest.mark.parametrize("beta", [-0.1, 1.0, 1.5, math.nan])
def test_beta_outside_unit_interval_is_a_value_error_naming_it(beta):
    with pytest.raises(ValueError, match="beta"):
        optim.momentum(0.1, beta)


@pytest.mark.parametrize("variant", ["polyak", "Nesterov", ""])
def test_unknown_momentum_variant_is_a_value_error_listing_the_valid_ones(variant):
    with pytest.raises(ValueError, match="variant") as info:
        optim.momentum(0.1, 0.9, variant=variant)
    for valid in optim.MOMENTUM_VARIANTS:
        assert valid in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"b1": 1.0}, "b1"),
        ({"b1": -0.5}, "b1"),
        ({"b2": 1.0}, "b2"),
        ({"b2": 2.0}, "b2"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -1e-8}, "eps"),
    ],
)
def test_bad_adam_hyperparameters_are_value_errors_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        optim.adam(0.1, **kwargs)


def test_rules_are_gradient_transformations():
    for opt in (optim.gd(0.1), optim.sgd(0.1), optim.momentum(0.1), optim.adam(0.1)):
        assert isinstance(opt, optax.GradientTransformation)


# --------------------------------------------------------------------------- by name

BETA = 0.7
DIRECT = {
    "gd": lambda lr: optim.gd(lr),
    "sgd": lambda lr: optim.sgd(lr),
    "momentum": lambda lr: optim.momentum(lr, BETA, variant="heavy_ball"),
    "nesterov": lambda lr: optim.momentum(lr, BETA, variant="nesterov"),
    "ema": lambda lr: optim.momentum(lr, BETA, variant="ema"),
    "adam": lambda lr: optim.adam(lr),
}


def test_names_are_the_registry():
    assert optim.NAMES == ("gd", "sgd", "momentum", "nesterov", "ema", "adam")
    assert set(DIRECT) == set(optim.NAMES)


def _updates(optimizer, steps=3):
    """The updates of ``steps`` jitted steps on a fixed two-leaf gradient pytree."""
    params = {"w": jnp.asarray([[0.5, -1.0], [2.0, 0.25]]), "b": jnp.asarray([0.1, -0.3])}
    grads = {"w": jnp.asarray([[0.3, -0.2], [1.5, 0.7]]), "b": jnp.asarray([-0.4, 0.9])}
    update = jax.jit(optimizer.update)
    opt_state, out = optimizer.init(params), []
    for step in range(steps):
        scaled = jax.tree.map(lambda g, s=step: g * (1.0 + 0.5 * s), grads)
        updates, opt_state = update(scaled, opt_state, params)
        params = optax.apply_updates(params, updates)
        out.append(updates)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", optim.NAMES)
def test_from_name_equals_the_direct_constructor(name):
    lr = 0.03
    actual = _updates(optim.from_name(name, lr, beta=BETA))
    expected = _updates(DIRECT[name](lr))
    for a, e in zip(actual, expected, strict=True):
        for leaf_a, leaf_e in zip(jax.tree.leaves(a), jax.tree.leaves(e), strict=True):
            np.testing.assert_array_equal(leaf_a, leaf_e)


def test_from_name_momentum_rules_use_beta():
    with_beta = _trajectory(optim.from_name("momentum", 0.1, beta=0.5))
    np.testing.assert_allclose(with_beta, _by_hand(_heavy_ball(0.1, 0.5)), rtol=1e-13)
    default = _trajectory(optim.from_name("nesterov", 0.1))
    np.testing.assert_allclose(default, _by_hand(_nesterov(0.1, 0.9)), rtol=1e-13)


@pytest.mark.slow
@pytest.mark.parametrize("name", optim.NAMES)
def test_factory_is_from_name_with_the_learning_rate_left_open(name):
    make = optim.factory(name, beta=BETA)
    np.testing.assert_array_equal(
        _trajectory(make(0.05)), _trajectory(optim.from_name(name, 0.05, beta=BETA))
    )


@pytest.mark.parametrize("name", optim.NAMES)
def test_factory_returns_the_same_function_for_the_same_name_and_beta(name):
    assert optim.factory(name) is optim.factory(name)
    assert optim.factory(name, beta=0.5) is optim.factory(name, beta=np.float64(0.5))


def test_factory_tells_betas_apart_only_where_they_matter():
    assert optim.factory("momentum", beta=0.5) is not optim.factory("momentum", beta=0.9)
    assert optim.factory("ema", beta=0.5) is not optim.factory("nesterov", beta=0.5)
    assert optim.factory("sgd", beta=0.5) is optim.factory("sgd")
    assert optim.factory("adam", beta=0.2) is optim.factory("adam")


def test_factory_with_a_traced_learning_rate_compiles_once(count_compilations):
    make = optim.factory("nesterov", beta=0.5)
    g = jnp.asarray(_gradient(W0))

    @jax.jit
    def first_update(lr):
        opt = make(lr)
        return opt.update(g, opt.init(g), g)[0]

    first_update(0.1)
    with count_compilations() as compiled:
        np.testing.assert_allclose(first_update(0.2), -0.2 * 1.5 * np.asarray(g), rtol=1e-15)
    assert compiled == []


@pytest.mark.parametrize("name", optim.NAMES)
def test_default_learning_rate_is_small_for_adam_only(name):
    assert optim.default_learning_rate(name) == (0.001 if name == "adam" else 0.05)


@pytest.mark.parametrize("name", ["Adam", "rmsprop", "", None, 3])
@pytest.mark.parametrize(
    "call",
    [
        lambda name: optim.from_name(name, 0.1),
        optim.default_learning_rate,
        optim.factory,
    ],
    ids=["from_name", "default_learning_rate", "factory"],
)
def test_an_unknown_name_is_a_value_error_listing_the_choices(name, call):
    with pytest.raises(ValueError, match=r"^name: expected one of") as info:
        call(name)
    for choice in optim.NAMES:
        assert choice in str(info.value)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("beta", [1.0, -0.5, math.nan])
@pytest.mark.parametrize("name", ["momentum", "nesterov", "ema"])
def test_a_bad_beta_is_a_value_error_naming_it(name, beta):
    with pytest.raises(ValueError, match=r"^beta:"):
        optim.factory(name, beta=beta)
    with pytest.raises(ValueError, match=r"^beta:"):
        optim.from_name(name, 0.1, beta=beta)


def test_a_non_numeric_beta_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"^beta:"):
        optim.factory("momentum", beta="high")


def test_from_name_checks_the_learning_rate():
    with pytest.raises(ValueError, match="learning_rate"):
        optim.from_name("adam", -1.0)

"""The general engine equals ``jax.value_and_grad`` on real models, in float64.

The MLP of ``fungrad.mlp`` for every activation and every loss (and the MLP engine,
``fungrad.backprop``, equal to both); a small CNN written as a plain function of a params
dict (convolutions, max and average pooling, a dense head, softmax cross-entropy); a
residual MLP with layer normalisation; and models written with equinox (``eqx.nn.MLP`` and
a small ``eqx.nn.Conv2d`` net), differentiated through their pure function
``params -> loss`` (``eqx.partition``/``eqx.combine``): third-party code with its own
``jit``s, ``vmap``s and custom rules. The CNN is also checked under ``jax.jit`` and per
sample under ``jax.vmap``.

Agreement is measured per gradient leaf relative to its largest entry, floored at 1e-6 of
the largest entry of all leaves, and must be within 1e-10 (float64).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from fungrad import backprop, graph, losses, mlp
from fungrad.activations import activation_names

RTOL = 1e-10


def assert_same(ours, theirs, rtol: float = RTOL, context: str = "") -> None:
    """``(value, grads)`` pairs agree: same structure, every leaf within ``rtol`` of its scale."""
    assert jax.tree.structure(ours) == jax.tree.structure(theirs), context
    (value, grads), (ref_value, ref_grads) = jax.device_get((ours, theirs))
    np.testing.assert_allclose(value, ref_value, rtol=rtol, err_msg=context)
    leaves = list(zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True))
    overall = max(float(np.max(np.abs(r), initial=0.0)) for _, r in leaves)
    assert overall > 0, f"a gradient that is zero everywhere tests nothing ({context})"
    for a, r in leaves:
        assert a.shape == r.shape and a.dtype == r.dtype, context
        scale = max(float(np.max(np.abs(r), initial=0.0)), 1e-6 * overall)
        np.testing.assert_allclose(a, r, rtol=0, atol=rtol * scale, err_msg=context)


# Parameters and data come from NumPy: drawing them with jax.random would compile a
# program per shape, which costs more than the gradients under test.
def targets_for(loss: losses.Loss, rng: np.random.Generator, batch: int, k: int):
    """Targets of the kind ``loss`` takes: reals, values in [0, 1], or class labels."""
    if loss.target == "real":
        return rng.normal(size=(batch, k))
    if loss.target == "binary":
        return rng.uniform(size=(batch, k))
    return rng.integers(0, k, size=batch)


def dense_params(rng: np.random.Generator, sizes) -> list[dict]:
    """MLP parameters in fungrad's layout, ``w`` scaled by ``1/sqrt(n_in)``."""
    return [
        {"w": rng.normal(size=(n, m)) / np.sqrt(n), "b": 0.1 * rng.normal(size=m)}
        for n, m in zip(sizes[:-1], sizes[1:], strict=True)
    ]


# --- The MLP: every activation and every loss ----------------------------------------------
def _mlp_problem(sizes, batch, loss, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, sizes[0]))
    return dense_params(rng, sizes), x, targets_for(loss, rng, batch, sizes[-1])


# relu in the quick subset; every other activation is marked slow.
ACTIVATIONS = [
    name if name == "relu" else pytest.param(name, marks=pytest.mark.slow)
    for name in activation_names()
]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.slow
def test_mlp_every_activation_and_loss(activation):
    """For each loss: the general engine, jax.grad and the MLP engine agree (one compile)."""
    problems = {
        name: _mlp_problem([4, 6, 5, 3], 7, losses.get_loss(name), seed=i)
        for i, name in enumerate(losses.loss_names())
    }

    @jax.jit
    def three_engines(problems):
        results = {}
        for name, (params, x, y) in problems.items():
            loss = losses.get_loss(name)

            def objective(p, x=x, y=y, loss=loss):
                return jnp.mean(loss.fn(mlp.apply(p, x, activation=activation), y))

            results[name] = (
                graph.value_and_grad(objective)(params),
                jax.value_and_grad(objective)(params),
                backprop.value_and_grad(params, x, y, activation=activation, loss=loss),
            )
        return results

    for name, (ours, theirs, mlp_engine) in three_engines(problems).items():
        assert_same(ours, theirs, context=f"graph vs jax, {activation}, {name}")
        assert_same(mlp_engine, ours, context=f"backprop vs graph, {activation}, {name}")


@pytest.mark.slow
def test_mlp_engine_equals_the_general_engine_on_random_architectures():
    """Depths 1-4, widths 1-9, batches 1-8; each activation once as the hidden one (with
    another as the output's for the regression losses), each loss twice."""
    rng = np.random.default_rng(0)
    names = list(activation_names())
    cases = []
    for i, loss_name in enumerate(losses.loss_names() * 2):
        sizes = [int(n) for n in rng.integers(1, 10, size=int(rng.integers(2, 6)))]
        sizes[-1] = max(sizes[-1], 2)
        loss = losses.get_loss(loss_name)
        params, batch = dense_params(rng, sizes), int(rng.integers(1, 9))
        x, y = rng.normal(size=(batch, sizes[0])), targets_for(loss, rng, batch, sizes[-1])
        hidden, output = names[i % len(names)], names[(3 * i + 1) % len(names)]
        if loss.target != "real":
            output = "identity"  # the classification losses take logits
        cases.append((params, x, y, loss_name, hidden, output))

    @jax.jit
    def both_engines(arrays):
        results = []
        for (params, x, y), (_, _, _, name, hidden, output) in zip(arrays, cases, strict=True):
            loss = losses.get_loss(name)

            def objective(p, x=x, y=y, loss=loss, hidden=hidden, output=output):
                y_hat = mlp.apply(p, x, activation=hidden, output_activation=output)
                return jnp.mean(loss.fn(y_hat, y))

            mlp_engine = backprop.value_and_grad(
                params, x, y, activation=hidden, output_activation=output, loss=loss
            )
            results.append((mlp_engine, graph.value_and_grad(objective)(params)))
        return results

    arrays = [case[:3] for case in cases]
    for (mlp_engine, ours), case in zip(both_engines(arrays), cases, strict=True):
        sizes = mlp.layer_sizes(case[0])
        assert_same(mlp_engine, ours, context=f"{sizes} {case[3:]}")


# --- A CNN as a plain function of a params dict ---------------------------------------------
def cnn_init(rng: np.random.Generator, channels=(1, 4, 6), classes=3, image=8) -> dict:
    """Parameters of ``cnn_apply``: two 3x3 convolutions and a dense head."""
    c0, c1, c2 = channels
    flat = c2 * (image // 4) ** 2

    def normal(shape, fan_in):
        return rng.normal(size=shape) / np.sqrt(fan_in)

    return {
        "conv1": {"w": normal((c1, c0, 3, 3), 9 * c0), "b": normal((c1,), 10)},
        "conv2": {"w": normal((c2, c1, 3, 3), 9 * c1), "b": normal((c2,), 10)},
        "dense": {"w": normal((flat, classes), flat), "b": normal((classes,), 10)},
    }


def cnn_apply(params, x):
    """``x: (batch, 1, 8, 8)`` -> logits: conv-relu-maxpool, conv-tanh-avgpool, dense."""

    def conv(x, layer, stride=1):
        y = lax.conv_general_dilated(x, layer["w"], (stride, stride), "SAME")
        return y + layer["b"][None, :, None, None]

    h = jax.nn.relu(conv(x, params["conv1"]))
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    h = jnp.tanh(conv(h, params["conv2"]))
    h = lax.reduce_window(h, 0.0, lax.add, (1, 1, 2, 2), (1, 1, 2, 2), "VALID") / 4
    return h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"]


def softmax_cross_entropy(logits, labels):
    """Per-sample ``-log softmax(logits)[label]``."""
    log_p = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]


def _cnn_problem(batch=5):
    rng = np.random.default_rng(1)
    params = cnn_init(rng)
    return params, rng.normal(size=(batch, 1, 8, 8)), rng.integers(0, 3, size=batch)


def cnn_objective(params, x, labels):
    return jnp.mean(softmax_cross_entropy(cnn_apply(params, x), labels))


def value_and_grad_pair(objective, *args):
    """The general engine's and JAX's ``(value, grads)`` of ``objective`` at ``args``."""
    return graph.value_and_grad(objective)(*args), jax.value_and_grad(objective)(*args)


def jitted_pair(objective, *args):
    """``value_and_grad_pair`` in one compiled program."""
    return jax.jit(value_and_grad_pair, static_argnums=0)(objective, *args)


@pytest.mark.slow
def test_cnn_under_jit():
    params, x, labels = _cnn_problem()
    assert_same(*jitted_pair(cnn_objective, params, x, labels))


@pytest.mark.slow
def test_cnn_per_sample_gradients_under_vmap():
    params, x, labels = _cnn_problem(batch=4)

    def per_sample(x_i, label_i):
        return value_and_grad_pair(cnn_objective, params, x_i[None], label_i[None])

    ours, theirs = jax.jit(jax.vmap(per_sample))(x, labels)
    for i in range(x.shape[0]):
        assert_same(*jax.tree.map(lambda leaf, i=i: leaf[i], (ours, theirs)), context=f"{i}")


# --- A residual MLP with layer normalisation ------------------------------------------------
def residual_init(rng: np.random.Generator, n_in=5, width=8, blocks=2, n_out=3) -> dict:
    """Parameters of ``residual_apply`` (norms near, not at, scale 1 and shift 0)."""

    def dense(n, m):
        (layer,) = dense_params(rng, [n, m])
        return layer

    return {
        "embed": dense(n_in, width),
        "blocks": [
            {
                "norm": {
                    "scale": 1 + 0.1 * rng.normal(size=width),
                    "shift": 0.1 * rng.normal(size=width),
                },
                "hidden": dense(width, 2 * width),
                "back": dense(2 * width, width),
            }
            for _ in range(blocks)
        ],
        "head": dense(width, n_out),
    }


def layer_norm(h, norm, eps=1e-5):
    """``(h - mean) / sqrt(var + eps) * scale + shift`` over the last axis."""
    mean = jnp.mean(h, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(h - mean), axis=-1, keepdims=True)
    return (h - mean) * lax.rsqrt(var + eps) * norm["scale"] + norm["shift"]


def residual_apply(params, x):
    """``h = x W``; each block ``h += W2 gelu(W1 layer_norm(h))``; logits from ``h``."""
    h = x @ params["embed"]["w"] + params["embed"]["b"]
    for block in params["blocks"]:
        u = layer_norm(h, block["norm"]) @ block["hidden"]["w"] + block["hidden"]["b"]
        h = h + jax.nn.gelu(u) @ block["back"]["w"] + block["back"]["b"]
    return h @ params["head"]["w"] + params["head"]["b"]


@pytest.mark.slow
def test_residual_mlp_with_layer_norm():
    rng = np.random.default_rng(2)
    params = residual_init(rng)
    x, labels = rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)

    def objective(p):
        return jnp.mean(softmax_cross_entropy(residual_apply(p, x), labels))

    assert_same(*jitted_pair(objective, params))


# --- Models written with equinox ----------------------------------------------------------
def equinox_model(rng: np.random.Generator, make):
    """The module ``make(key)`` builds, its array leaves drawn from ``rng`` instead.

    The module is built abstractly (``eqx.filter_eval_shape``), so no initializer runs.
    """
    abstract = eqx.filter_eval_shape(make, jax.random.key(0))

    def fill(leaf):
        if not isinstance(leaf, jax.ShapeDtypeStruct):
            return leaf
        fan_in = math.prod(leaf.shape[1:]) if len(leaf.shape) > 1 else 10
        return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in), leaf.dtype)

    return jax.tree.map(fill, abstract, is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct))


def equinox_objective(model, loss):
    """``(params, x, y) -> loss`` for an equinox model, and its params: the array leaves."""
    params, static = eqx.partition(model, eqx.is_array)

    def objective(params, x, y):
        y_hat = jax.vmap(eqx.combine(params, static))(x)
        return jnp.mean(loss(y_hat, y))

    return objective, params


@pytest.mark.slow
def test_equinox_mlp_eagerly():
    rng = np.random.default_rng(3)
    model = equinox_model(
        rng, lambda key: eqx.nn.MLP(4, 3, width_size=6, depth=2, activation=jax.nn.gelu, key=key)
    )
    x, labels = rng.normal(size=(5, 4)), rng.integers(0, 3, size=5)
    objective, params = equinox_objective(model, softmax_cross_entropy)
    ours = graph.value_and_grad(objective)(params, x, labels)
    assert_same(ours, jax.value_and_grad(objective)(params, x, labels))


def _equinox_conv_net(key):
    keys = jax.random.split(key, 3)
    return eqx.nn.Sequential(
        [
            eqx.nn.Conv2d(1, 3, kernel_size=3, padding=1, key=keys[0]),
            eqx.nn.Lambda(jax.nn.relu),
            eqx.nn.MaxPool2d(kernel_size=2, stride=2),
            eqx.nn.Conv2d(3, 4, kernel_size=2, stride=2, key=keys[1]),
            eqx.nn.Lambda(jnp.ravel),
            eqx.nn.LayerNorm(16),
            eqx.nn.Linear(16, 3, key=keys[2]),
        ]
    )


@pytest.mark.slow
def test_equinox_conv_net():
    rng = np.random.default_rng(4)
    model = equinox_model(rng, _equinox_conv_net)
    x, y = rng.normal(size=(4, 1, 8, 8)), rng.normal(size=(4, 3))
    objective, params = equinox_objective(model, lambda y_hat, y: jnp.sum((y_hat - y) ** 2, -1))
    assert_same(*jitted_pair(objective, params, x, y))

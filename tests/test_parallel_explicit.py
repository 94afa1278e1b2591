"""Meshes with Auto and Explicit axes, built by ``jax.make_mesh`` or ``jax.sharding.Mesh``.

On 4 forced CPU devices (one subprocess, since XLA fixes the device count when JAX starts),
every kind of mesh trains an MLP and a CNN (``model=cnn.apply`` on 8x8 images) in float64:
data-parallel ``fit`` over a ``"data"`` axis, ``fit_restarts`` over a ``"runs"`` axis, and
both at once over a 2-D mesh. Each result must equal the one-device run to float64 rounding
and come back on the caller's own mesh.
"""

import textwrap

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, Mesh

import fungrad
from fungrad import mlp, optim, parallel

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, Mesh
    jax.config.update("jax_enable_x64", True)
    import fungrad
    from fungrad import cnn, mlp, optim, parallel

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 64))
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)
    models = {
        "mlp": (mlp.init(jax.random.key(0), [64, 8, 3], dtype=jnp.float64), {}),
        "cnn": (cnn.init(jax.random.key(0), side=8, n_outputs=3, channels=(2, 4),
                         dtype=jnp.float64), {"model": cnn.apply}),
    }
    common = dict(loss="softmax_cross_entropy", epochs=2, key=jax.random.key(1), batch_size=16)
    rates = [0.05, 0.1, 0.2, 0.4]
    sgd = optim.sgd(0.1)  # one optimizer: a run with the same settings reuses its program
    compiled = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kwargs: compiled.append(event)
        if event == "/jax/core/compile/backend_compile_duration" else None)

    def difference(a, b):  # in NumPy: nothing here compiles
        return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in
                   zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))

    def placement(tree, mesh):
        leaf = jax.tree.leaves(tree)[0]
        return {"on_mesh": leaf.sharding.mesh == mesh, "spec": list(leaf.sharding.spec)}

    def fit(name, mesh=None):
        params, options = models[name]
        return fungrad.fit(params, x, y, optimizer=sgd, mesh=mesh, **options, **common)

    def restarts(name, mesh=None):
        params, options = models[name]
        return fungrad.fit_restarts(params, x, y, optimizer=optim.sgd, learning_rates=rates,
                                    mesh=mesh, **options, **common)

    single = {name: fit(name) for name in models}
    resumed = fungrad.fit(models["mlp"][0], x, y, optimizer=sgd, initial_state=single["mlp"].state,
                          **common)
    local = {name: restarts(name) for name in models}
    report = {"device_count": jax.device_count(),
              "data_mesh_types": [t.name for t in parallel.data_mesh(4).axis_types]}
    for kind in ("Auto", "Explicit"):
        before = len(compiled)
        axis_type = getattr(AxisType, kind)
        data = jax.make_mesh((4,), ("data",), axis_types=(axis_type,))
        runs = jax.make_mesh((4,), ("runs",), axis_types=(axis_type,))
        both = jax.make_mesh((2, 2), ("runs", "data"), axis_types=(axis_type,) * 2)
        for name in models:
            one = fit(name, data)
            report[f"{kind}/fit/{name}"] = {
                "difference": difference(one.params, single[name].params),
                "loss": float(np.max(np.abs(one.history["loss"] - single[name].history["loss"]))),
                "state": placement(one.state, data), **placement(one.params, data),
            }
            if name == "mlp":  # from a state that lives on the mesh
                again = fungrad.fit(models["mlp"][0], x, y, optimizer=sgd, mesh=data,
                                    initial_state=one.state, **common)
                report[f"{kind}/resume/mlp"] = difference(again.params, resumed.params)
            for label, mesh in (("runs", runs), ("runs+data", both)):
                if (name, label) == ("cnn", "runs"):
                    continue  # the 2-D mesh spreads the CNN's runs too
                spread = restarts(name, mesh)
                report[f"{kind}/{label}/{name}"] = {
                    "difference": difference(spread.params, local[name].params),
                    "best_same": spread.best_index == local[name].best_index,
                    "best": placement(spread.best_params, mesh),
                    **placement(spread.params, mesh),
                }
        report[f"{kind}/compiled"] = len(compiled) - before
        direct = Mesh(np.array(jax.devices()), ("data",), axis_types=(axis_type,))
        report[f"{kind}/Mesh/mlp"] = difference(fit("mlp", direct).params, single["mlp"].params)
        # Under the caller's own context mesh, with a callback using an array on that mesh.
        probe = jax.device_put(jnp.ones(4), jax.sharding.NamedSharding(direct, jax.P("data")))
        sums = []
        with jax.set_mesh(direct):
            inside = fungrad.fit(models["mlp"][0], x, y, optimizer=sgd, mesh=direct,
                                 callback=lambda epoch, _: sums.append(float(jnp.sum(2 * probe))),
                                 **common)
        report[f"{kind}/set_mesh/mlp"] = difference(inside.params, single["mlp"].params)
        report[f"{kind}/set_mesh/callback"] = sums
    plain = Mesh(np.array(jax.devices()), ("data",))
    report["Mesh_default_types"] = [t.name for t in plain.axis_types]

    explicit = jax.make_mesh((4,), ("data",), axis_types=(AxisType.Explicit,))
    rows = jax.device_put(x, jax.sharding.NamedSharding(explicit, jax.P("data")))
    report["explicit_input"] = difference(
        fungrad.fit(models["mlp"][0], rows, y, optimizer=sgd, mesh=explicit, **common).params,
        single["mlp"].params)
    print("REPORT" + json.dumps(report))
    """
)

# Each test here starts a process or compiles whole programs: the full suite runs them.
pytestmark = pytest.mark.slow

KINDS = ("Auto", "Explicit")
MODELS = ("mlp", "cnn")


@pytest.fixture(scope="module")
def report(run_on_four_devices):
    return run_on_four_devices(SCRIPT)


def test_four_devices_and_the_default_axis_types(report):
    assert report["device_count"] == 4
    assert report["Mesh_default_types"] == ["Auto"]
    # data_mesh is jax.make_mesh with JAX's default axis type (Explicit on current JAX).
    default = jax.make_mesh((1,), ("data",)).axis_types
    assert report["data_mesh_types"] == [t.name for t in default]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_data_parallel_fit_equals_one_device(report, kind, name):
    result = report[f"{kind}/fit/{name}"]
    assert result["difference"] < 1e-10
    assert result["loss"] < 1e-10
    assert result["on_mesh"] and result["spec"] == []
    assert result["state"] == {"on_mesh": True, "spec": []}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "name, label", [("mlp", "runs"), ("mlp", "runs+data"), ("cnn", "runs+data")]
)
def test_restarts_spread_over_devices_equal_local_ones(report, kind, name, label):
    result = report[f"{kind}/{label}/{name}"]
    assert result["difference"] < 1e-10
    assert result["best_same"]
    assert result["on_mesh"] and result["spec"] == ["runs"]
    assert result["best"]["on_mesh"]


@pytest.mark.parametrize("kind", KINDS)
def test_meshes_from_the_mesh_class_and_under_set_mesh(report, kind):
    assert report[f"{kind}/Mesh/mlp"] < 1e-10
    assert report[f"{kind}/set_mesh/mlp"] < 1e-10
    assert report[f"{kind}/set_mesh/callback"] == [8.0, 8.0]  # one call per epoch


def test_explicit_meshes_run_the_program_compiled_for_auto_ones(report):
    # Every Explicit-mesh run above reused what the Auto-mesh runs compiled: one program.
    assert report["Auto/compiled"] > 0
    assert report["Explicit/compiled"] == 0


@pytest.mark.parametrize("kind", KINDS)
def test_resuming_from_a_state_on_the_mesh(report, kind):
    assert report[f"{kind}/resume/mlp"] < 1e-10


def test_rows_already_sharded_on_an_explicit_mesh(report):
    assert report["explicit_input"] < 1e-10


def test_auto_view_keeps_an_auto_mesh_as_it_is():
    mesh = Mesh(jax.devices()[:1], ("data",), axis_types=(AxisType.Auto,))
    assert parallel.auto_view(mesh) is mesh
    explicit = Mesh(jax.devices()[:1], ("data",), axis_types=(AxisType.Explicit,))
    view = parallel.auto_view(explicit)
    assert view.axis_types == (AxisType.Auto,)
    assert view.axis_names == explicit.axis_names and list(view.devices) == list(explicit.devices)


def test_auto_view_of_a_mixed_mesh_is_all_auto():
    types = (AxisType.Explicit, AxisType.Auto)
    mesh = Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("runs", "data"), axis_types=types)
    assert parallel.auto_view(mesh).axis_types == (AxisType.Auto, AxisType.Auto)


def test_mesh_context_is_empty_without_a_mesh():
    with parallel.mesh_context(None):
        assert jax.sharding.get_abstract_mesh().empty


def test_one_device_explicit_mesh_trains_like_no_mesh():
    x = jax.random.normal(jax.random.key(0), (40, 3))
    y = jax.numpy.sum(x, axis=1, keepdims=True)
    params = mlp.init(jax.random.key(1), [3, 4, 1], dtype=jax.numpy.float64)
    common = dict(
        loss="l2", optimizer=optim.sgd(0.05), epochs=2, key=jax.random.key(2), batch_size=8
    )
    mesh = jax.make_mesh((1,), ("data",), axis_types=(AxisType.Explicit,))
    plain = fungrad.fit(params, x, y, **common)
    meshed = fungrad.fit(params, x, y, mesh=mesh, **common)
    assert meshed.params[0]["w"].sharding.mesh == mesh
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(meshed.params), strict=True):
        assert jax.numpy.allclose(a, b, rtol=0, atol=1e-12)

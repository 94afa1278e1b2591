"""Data-parallel training and spread-out restarts on 4 forced CPU devices.

XLA fixes the device count when JAX starts, so the checks run in one subprocess started with
``--xla_force_host_platform_device_count=4``; it reports what it saw as JSON and each test
asserts on one part of it.
"""

import textwrap

import jax
import pytest

import fungrad
from fungrad import mlp, optim, parallel

# Each test here starts processes or compiles whole programs: the full suite runs them.
pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh
    import fungrad
    from fungrad import mlp, optim, parallel

    report = {"device_count": jax.device_count()}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(203, 8)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)).astype(np.int32)
    params = mlp.init(jax.random.key(0), [8, 16, 3])
    common = dict(loss="softmax_cross_entropy", epochs=4, key=jax.random.key(1), batch_size=32)

    def max_difference(a, b):
        return max(float(jnp.max(jnp.abs(u - v))) for u, v in
                   zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    one = fungrad.fit(params, x, y, optimizer=optim.momentum(0.05), **common)
    mesh = parallel.data_mesh(4)
    seen = []

    def gradients(p, xb, yb, weights):
        jax.debug.inspect_array_sharding(xb, callback=lambda s: seen.append(s))
        return fungrad.value_and_grad(p, xb, yb, loss="softmax_cross_entropy", weights=weights)

    four = fungrad.fit(params, x, y, optimizer=optim.momentum(0.05), mesh=mesh, **common)
    probe = fungrad.fit(params, x, y, optimizer=optim.momentum(0.05), mesh=mesh,
                        gradients=gradients, **common)
    report["data_parallel_difference"] = max_difference(one.params, four.params)
    report["probe_difference"] = max_difference(one.params, probe.params)
    report["loss_difference"] = float(np.max(np.abs(one.history["loss"] - four.history["loss"])))
    sharding = four.params[0]["w"].sharding
    report["params_devices"] = len(sharding.device_set)
    report["params_replicated"] = bool(sharding.is_fully_replicated)
    report["batch_spec"] = [list(s.spec) for s in seen[:1]]
    report["batch_devices"] = [len(s.device_set) for s in seen[:1]]

    lowered = jax.jit(
        lambda p, xb, yb: fungrad.value_and_grad(p, xb, yb, loss="softmax_cross_entropy"),
        in_shardings=(parallel.replicated(mesh), parallel.batch_sharded(mesh),
                      parallel.batch_sharded(mesh)),
    ).lower(params, x[:32], y[:32])
    report["hlo_all_reduce"] = "all-reduce" in lowered.compile().as_text()

    runs_mesh = Mesh(np.array(jax.devices()), ("runs",))
    rates = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
    restarts = dict(optimizer=optim.sgd, learning_rates=rates, **common)
    spread = fungrad.fit_restarts([params] * 8, x, y, mesh=runs_mesh, **restarts)
    local = fungrad.fit_restarts([params] * 8, x, y, **restarts)
    report["restarts_difference"] = max_difference(spread.params, local.params)
    report["restarts_spec"] = list(spread.params[0]["w"].sharding.spec)
    report["restarts_best_same"] = spread.best_index == local.best_index

    errors = {}
    for name, call in {
        "indivisible_batch": lambda: fungrad.fit(params, x, y, optimizer=optim.sgd(0.1),
                                                 mesh=mesh, **{**common, "batch_size": 30}),
        "no_data_axis": lambda: fungrad.fit(params, x, y, optimizer=optim.sgd(0.1),
                                            mesh=Mesh(np.array(jax.devices()), ("model",)),
                                            **common),
        "indivisible_runs": lambda: fungrad.fit_restarts([params] * 6, x, y, mesh=runs_mesh,
                                                         **restarts | {"learning_rates": rates[:6]}),
    }.items():
        try:
            call()
            errors[name] = None
        except (ValueError, TypeError) as error:
            errors[name] = str(error)
    report["errors"] = errors

    import contextlib, io, tempfile
    from fungrad.cli import main
    with tempfile.TemporaryDirectory() as out:
        report["cli_status"] = main(["train", "--devices", "4", "--epochs", "1", "--quiet",
                                     "--no-plot", "--out", out])
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            report["cli_bad_status"] = main(["train", "--devices", "all", "--batch-size", "30",
                                             "--epochs", "1", "--quiet", "--out", out + "/bad"])
        report["cli_bad_message"] = stderr.getvalue()
    print("REPORT" + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def report(run_on_four_devices):
    return run_on_four_devices(SCRIPT)


def test_four_devices_are_present(report):
    assert report["device_count"] == 4


def test_data_parallel_equals_one_device(report):
    # The all-reduce sums per-device partial gradients: float32 rounding, not a different result.
    assert report["data_parallel_difference"] < 1e-5
    assert report["probe_difference"] < 1e-5
    assert report["loss_difference"] < 1e-5


def test_params_are_replicated_and_batches_sharded(report):
    assert report["params_devices"] == 4
    assert report["params_replicated"]
    assert report["batch_devices"] == [4]
    assert report["batch_spec"] == [["data"]]


def test_compiled_step_reduces_gradients_across_devices(report):
    assert report["hlo_all_reduce"]


def test_restarts_spread_over_devices_equal_local_ones(report):
    assert report["restarts_difference"] < 1e-5
    assert report["restarts_spec"] == ["runs"]
    assert report["restarts_best_same"]


def test_bad_meshes_give_clear_errors(report):
    errors = report["errors"]
    assert (
        "batch_size" in errors["indivisible_batch"]
        and "multiple of 4" in errors["indivisible_batch"]
    )
    assert "mesh" in errors["no_data_axis"] and "'data'" in errors["no_data_axis"]
    assert "6 runs" in errors["indivisible_runs"]


def test_command_line_trains_on_four_devices(report):
    assert report["cli_status"] == 0
    assert report["cli_bad_status"] == 2
    assert report["cli_bad_message"].count("\n") == 1
    assert "--batch-size: 30 samples per step" in report["cli_bad_message"]


def test_mesh_must_be_a_mesh():
    with pytest.raises(TypeError, match="mesh: expected a jax.sharding.Mesh"):
        parallel.check_mesh("data", batch=8)


def test_one_device_mesh_trains_like_no_mesh():
    x = jax.random.normal(jax.random.key(0), (40, 3), jax.numpy.float32)
    y = jax.numpy.sum(x, axis=1, keepdims=True)
    params = mlp.init(jax.random.key(1), [3, 4, 1], dtype=jax.numpy.float32)
    common = dict(
        loss="l2", optimizer=optim.sgd(0.05), epochs=2, key=jax.random.key(2), batch_size=8
    )
    plain = fungrad.fit(params, x, y, **common)
    meshed = fungrad.fit(params, x, y, mesh=parallel.data_mesh(1), **common)
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(meshed.params), strict=True):
        assert jax.numpy.allclose(a, b, atol=1e-6)


def test_data_mesh_rejects_too_many_devices():
    with pytest.raises(ValueError, match="devices: expected 'all' or an integer"):
        parallel.data_mesh(jax.device_count() + 1)

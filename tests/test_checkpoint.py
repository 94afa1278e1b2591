"""Checkpoints: round trips, best epochs and progress, format version 1, exact resumption,
atomic writes, leftovers, run-folder checks and damaged files."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fungrad
from fungrad import checkpoint, data, mlp, optim
from fungrad.checkpoint import (
    Best,
    CheckpointError,
    check_folder,
    remove_leftovers,
    restore,
    save,
    write_atomically,
    write_text,
)
from fungrad.train import TrainState

DATA = Path(__file__).parent / "data"


def make_state(sizes=(4, 5, 3), optimizer=None, key=None) -> TrainState:
    params = mlp.init(jax.random.key(0), list(sizes))
    optimizer = optimizer or optim.momentum(0.1, 0.9)
    key = jax.random.key(7) if key is None else key
    return TrainState(params, optimizer.init(params), jnp.asarray(12, jnp.int32), key)


def assert_states_equal(a: TrainState, b: TrainState):
    flat_a, tree_a = jax.tree_util.tree_flatten(a)
    flat_b, tree_b = jax.tree_util.tree_flatten(b)
    assert tree_a == tree_b
    for leaf_a, leaf_b in zip(flat_a, flat_b, strict=True):
        assert leaf_a.dtype == leaf_b.dtype and leaf_a.shape == leaf_b.shape
        if jnp.issubdtype(leaf_a.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(leaf_a) == jax.random.key_impl(leaf_b)
            leaf_a, leaf_b = jax.random.key_data(leaf_a), jax.random.key_data(leaf_b)
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))


def rewrite(path, *, meta=None, drop=()):
    """Copy the archive at ``path`` onto itself with a changed meta or without some members."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if meta is not None:
        members["__meta__.json"] = json.dumps(meta(json.loads(members["__meta__.json"])))
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            if name not in drop:
                archive.writestr(name, content)


# --------------------------------------------------------------------------- round trips


@pytest.mark.slow
def test_round_trip_with_like_restores_everything(tmp_path):
    state = make_state()
    history = {"loss": np.array([1.0, 0.5, np.nan], np.float32), "epoch": np.arange(3)}
    config = {"sizes": [4, 5, 3], "learning_rate": np.float32(0.1), "name": "run"}
    path = save(tmp_path / "run.npz", state, config=config, history=history)
    assert path == tmp_path / "run.npz"
    restored = restore(path, like=make_state())
    assert_states_equal(restored.state, state)
    assert restored.config == {
        "sizes": [4, 5, 3],
        "learning_rate": pytest.approx(0.1),
        "name": "run",
    }
    assert set(restored.history) == {"loss", "epoch"}
    np.testing.assert_array_equal(restored.history["loss"], history["loss"])
    assert restored.history["epoch"].dtype == history["epoch"].dtype


@pytest.mark.slow
def test_restore_without_like_rebuilds_params_step_and_key(tmp_path):
    state = make_state()
    restored = restore(save(tmp_path / "run.npz", state)).state
    assert isinstance(restored.params, list) and all(
        set(layer) == {"w", "b"} for layer in restored.params
    )
    assert_states_equal(restored._replace(opt_state=None), state._replace(opt_state=None))
    assert restored.opt_state is None  # optax's NamedTuple states need like=
    assert (
        restore(tmp_path / "run.npz").config == {} and restore(tmp_path / "run.npz").history == {}
    )


@pytest.mark.slow
def test_plain_container_state_is_rebuilt_without_like(tmp_path):
    params = mlp.init(jax.random.key(1), [2, 3])
    opt_state = {"velocity": [jnp.ones((2, 3)), (jnp.zeros(3), None)], "count": jnp.asarray(4)}
    state = TrainState(params, opt_state, jnp.asarray(3, jnp.int32), jax.random.key(2))
    restored = restore(save(tmp_path / "plain.npz", state)).state
    assert_states_equal(restored, state)
    assert isinstance(restored.opt_state["velocity"][1], tuple)


@pytest.mark.slow
@pytest.mark.parametrize(
    "key",
    [jax.random.PRNGKey(3), jax.random.key(3, impl="rbg"), jax.random.split(jax.random.key(3), 4)],
    ids=["raw-uint32", "typed-rbg", "typed-batch"],
)
def test_keys_round_trip(tmp_path, key):
    state = make_state(key=key)
    for like in (None, state):
        restored = restore(save(tmp_path / "k.npz", state), like=like).state
        assert_states_equal(restored._replace(opt_state=None), state._replace(opt_state=None))
    # The restored key draws the same numbers.
    np.testing.assert_array_equal(draw(restored.key), draw(state.key))


def draw(key):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim:
        return jax.vmap(lambda k: jax.random.normal(k, (3,)))(key)
    return jax.random.normal(key, (3,))


@pytest.mark.slow
def test_bfloat16_leaves_round_trip(tmp_path):
    state = make_state()
    state = state._replace(params=jax.tree.map(lambda a: a.astype(jnp.bfloat16), state.params))
    restored = restore(save(tmp_path / "bf16.npz", state)).state
    assert restored.params[0]["w"].dtype == jnp.bfloat16
    assert_states_equal(restored._replace(opt_state=None), state._replace(opt_state=None))


def test_like_may_be_abstract_shapes(tmp_path):
    state = make_state()
    save(tmp_path / "run.npz", state)
    like = jax.eval_shape(lambda: make_state())
    assert_states_equal(restore(tmp_path / "run.npz", like=like).state, state)


def test_file_is_plain_npz_readable_by_numpy_alone(tmp_path):
    state = make_state()
    path = save(tmp_path / "run.npz", state, config={"lr": 0.1}, history={"loss": [1.0, 0.5]})
    with np.load(path, allow_pickle=False) as arrays:
        np.testing.assert_array_equal(arrays["params/1/w"], state.params[1]["w"])
        np.testing.assert_array_equal(
            arrays["opt_state/0/trace/0/b"], state.opt_state[0].trace[0]["b"]
        )
        np.testing.assert_array_equal(arrays["key"], jax.random.key_data(state.key))
        np.testing.assert_array_equal(arrays["history/loss"], [1.0, 0.5])
        meta = json.loads(arrays["__meta__.json"])
    assert (
        meta["format"] == "fungrad-checkpoint"
        and meta["format_version"] == checkpoint.FORMAT_VERSION
    )
    assert meta["config"] == {"lr": 0.1}
    key_leaf = next(leaf for leaf in meta["leaves"] if leaf["path"] == ".key")
    assert key_leaf["dtype"] == "key<fry>" and key_leaf["key_impl"] == "threefry2x32"
    with zipfile.ZipFile(path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}


def test_same_state_gives_the_same_bytes(tmp_path):
    state = make_state()
    first = save(tmp_path / "a.npz", state, config={"x": 1}).read_bytes()
    assert save(tmp_path / "b.npz", state, config={"x": 1}).read_bytes() == first


def test_save_creates_parent_directories(tmp_path):
    path = save(tmp_path / "runs" / "one" / "last.ckpt", make_state())
    assert path.is_file() and restore(str(path)).state.step == 12


# --------------------------------------------------------------------------- best and progress


def scaled(params, factor):
    return jax.tree.map(lambda a: a * factor, params)


def assert_trees_equal(a, b):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for leaf_a, leaf_b in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert leaf_a.dtype == leaf_b.dtype and leaf_a.shape == leaf_b.shape
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))


@pytest.mark.parametrize("with_like", [False, True], ids=["from-file", "like"])
def test_best_and_progress_round_trip(tmp_path, with_like):
    state = make_state()
    best = Best(scaled(state.params, 0.5), epoch=4, value=0.25, metric="val_loss", mode="min")
    progress = {"epoch": 5, "code": np.array([0, 2], np.int32), "stalled": np.float32(1.5)}
    path = save(tmp_path / "run.npz", state, best=best, progress=progress)
    restored = restore(path, like=make_state() if with_like else None)
    assert_trees_equal(restored.best.params, best.params)
    assert type(restored.best.params) is list and set(restored.best.params[0]) == {"w", "b"}
    assert (restored.best.epoch, restored.best.value) == (4, 0.25)
    assert type(restored.best.epoch) is int and type(restored.best.value) is float
    assert (restored.best.metric, restored.best.mode) == ("val_loss", "min")
    assert set(restored.progress) == {"epoch", "code", "stalled"}
    assert restored.progress["epoch"].shape == () and int(restored.progress["epoch"]) == 5
    np.testing.assert_array_equal(restored.progress["code"], [0, 2])
    assert restored.progress["code"].dtype == np.int32
    assert restored.progress["stalled"].dtype == np.float32
    assert_states_equal(restored.state._replace(opt_state=None), state._replace(opt_state=None))


def make_stacked_state(runs=3) -> TrainState:
    """A state stacked over ``runs`` restarts, as fit_restarts carries it."""
    params = mlp.init(jax.random.key(0), [4, 5, 3])
    params = jax.tree.map(lambda a: jnp.stack([a + run for run in range(runs)]), params)
    optimizer = optim.momentum(0.1, 0.9)
    opt_state = jax.vmap(optimizer.init)(params)
    keys = jax.random.split(jax.random.key(7), runs)
    return TrainState(params, opt_state, jnp.arange(runs, dtype=jnp.int32), keys)


@pytest.mark.slow
@pytest.mark.parametrize("with_like", [False, True], ids=["from-file", "like"])
def test_best_stacked_over_runs_round_trips(tmp_path, with_like):
    state = make_stacked_state()
    epoch = np.array([3, 0, 7], np.int32)
    value = np.array([0.75, np.nan, 0.5])
    best = Best(scaled(state.params, 2.0), epoch, value, metric="val_accuracy", mode="max")
    path = save(
        tmp_path / "restarts.npz", state, best=best, progress={"epoch": np.array([3, 4, 7])}
    )
    restored = restore(path, like=make_stacked_state() if with_like else None)
    assert_trees_equal(restored.best.params, best.params)
    assert restored.best.params[0]["w"].shape == (3, 4, 5)
    assert restored.best.epoch.dtype == np.int32
    np.testing.assert_array_equal(restored.best.epoch, epoch)
    np.testing.assert_array_equal(restored.best.value, value)  # NaN where a run had none
    assert (restored.best.metric, restored.best.mode) == ("val_accuracy", "max")
    np.testing.assert_array_equal(restored.progress["epoch"], [3, 4, 7])
    if with_like:
        assert_states_equal(restored.state, state)


def test_best_params_are_placed_with_likes_shardings(tmp_path):
    state = make_state()
    save(tmp_path / "run.npz", state, best=Best(state.params, 1, 0.5, "loss", "min"))
    mesh = jax.sharding.Mesh(jax.devices()[:1], ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    like = make_state()._replace(params=jax.device_put(make_state().params, sharding))
    restored = restore(tmp_path / "run.npz", like=like)
    assert all(leaf.sharding == sharding for leaf in jax.tree.leaves(restored.best.params))
    assert all(leaf.sharding == sharding for leaf in jax.tree.leaves(restored.state.params))


def test_no_best_and_no_progress(tmp_path):
    restored = restore(save(tmp_path / "run.npz", make_state()))
    assert restored.best is None and restored.progress == {}
    assert checkpoint.Checkpoint(restored.state, {}, {}).progress == {}


def test_best_and_progress_are_plain_npz_members(tmp_path):
    state = make_state()
    best = Best(scaled(state.params, 3.0), np.int64(2), np.float64(0.125), "val_loss", "min")
    path = save(tmp_path / "run.npz", state, best=best, progress={"epoch": np.array(9)})
    with np.load(path, allow_pickle=False) as arrays:
        np.testing.assert_array_equal(arrays["best/params/1/w"], best.params[1]["w"])
        assert int(arrays["best/epoch"]) == 2 and float(arrays["best/value"]) == 0.125
        assert int(arrays["progress/epoch"]) == 9
        meta = json.loads(arrays["__meta__.json"])
    assert meta["format_version"] == checkpoint.FORMAT_VERSION == 2
    assert {key: meta["best"][key] for key in ("metric", "mode", "epoch", "value")} == {
        "metric": "val_loss",
        "mode": "min",
        "epoch": {"member": "best/epoch"},
        "value": {"member": "best/value"},
    }
    assert meta["best"]["leaves"][0]["path"] == ".best.params[0]['b']"
    assert meta["progress"] == [{"name": "epoch", "member": "progress/epoch"}]


def test_like_that_does_not_match_the_best_params_is_refused(saved_with_best):
    def rename_first_best_leaf(meta):
        meta["best"]["leaves"][0]["path"] = ".best.params[0]['bias']"
        return meta

    rewrite(saved_with_best, meta=rename_first_best_leaf)
    with pytest.raises(CheckpointError, match=r"best.params has a different structure .*'bias'"):
        restore(saved_with_best, like=make_state())
    with pytest.raises(CheckpointError, match=r"damaged checkpoint: its structure does not match"):
        restore(saved_with_best)


@pytest.fixture
def saved_with_best(tmp_path):
    state = make_state()
    best = Best(state.params, 1, 0.5, "loss", "min")
    return save(tmp_path / "best.npz", state, best=best, progress={"epoch": 1})


def test_best_of_a_custom_node_needs_like(tmp_path):
    class Pair(tuple):
        pass

    jax.tree_util.register_pytree_node(Pair, lambda t: (tuple(t), None), lambda _, c: Pair(c))
    state = make_state()._replace(params=Pair((jnp.ones(2), jnp.zeros(3))))
    best = Best(Pair((jnp.full(2, 4.0), jnp.ones(3))), 2, 0.1, "loss", "min")
    save(tmp_path / "custom.npz", state, best=best)
    with pytest.raises(CheckpointError, match=r"params holds a .*Pair.*pass like="):
        restore(tmp_path / "custom.npz")
    restored = restore(tmp_path / "custom.npz", like=state)
    assert type(restored.best.params) is Pair
    assert_trees_equal(restored.best.params, best.params)


@pytest.mark.slow
def test_save_bad_best_and_progress(tmp_path):
    state, stacked = make_state(), make_stacked_state()
    good = Best(state.params, 1, 0.5, "val_loss", "min")
    cases = [
        (good._replace(mode="lowest"), ValueError, r"^best.mode: expected 'min' or 'max'"),
        (good._replace(metric=""), TypeError, r"^best.metric: expected a metric name"),
        (good._replace(epoch=1.5), ValueError, r"^best.epoch: expected an int >= 0"),
        (good._replace(epoch=-1), ValueError, r"^best.epoch: expected an int >= 0"),
        (good._replace(value=np.ones(2)), ValueError, r"^best.value: expected numbers shaped"),
        (good._replace(params=state.params[:1]), ValueError, r"^best.params: expected the struct"),
        (
            good._replace(params=scaled(state.params, jnp.float64(2.0))),
            ValueError,
            r"^best.params\[0\]\['b'\]: expected float32\(5,\) as in state.params, got float64",
        ),
        ((state.params, 1, 0.5, "loss", "min"), TypeError, r"^best: expected a .*Best, got tuple"),
    ]
    for best, error, message in cases:
        with pytest.raises(error, match=message):
            save(tmp_path / "a.npz", state, best=best)
    # Stacked over 3 runs, but best.epoch says 2.
    stacked_best = Best(stacked.params, np.array([1, 2]), np.array([0.5, 0.25]), "loss", "min")
    with pytest.raises(ValueError, match=r"^best.params\[0\]\['b'\]: expected a leading axis of 2"):
        save(tmp_path / "a.npz", stacked, best=stacked_best)
    with pytest.raises(TypeError, match=r"^progress: expected name -> numeric array, got 'code'"):
        save(tmp_path / "a.npz", state, progress={"code": "done"})
    with pytest.raises(TypeError, match=r"^progress: expected a dict"):
        save(tmp_path / "a.npz", state, progress=[1, 2])
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- format version 1


def v1_state() -> TrainState:
    """The state in tests/data/checkpoint-v1.npz.

    That file was written by the format-version-1 ``checkpoint.save``, with
    ``config={"sizes": [2, 3, 1], "learning_rate": 0.1}`` and
    ``history={"loss": np.array([1.0, 0.5], np.float32)}``.
    """
    params = [
        {
            "w": np.arange(6, dtype=np.float32).reshape(2, 3) / 8,
            "b": np.array([0.5, -0.25, 1.0], np.float32),
        },
        {
            "w": np.arange(3, dtype=np.float32).reshape(3, 1) / 4 - 0.25,
            "b": np.array([2.0], np.float32),
        },
    ]
    params = jax.tree.map(jnp.asarray, params)
    opt_state = optax.TraceState(trace=jax.tree.map(lambda a: -a, params))
    return TrainState(params, opt_state, jnp.asarray(12, jnp.int32), jax.random.key(7))


@pytest.mark.parametrize("with_like", [False, True], ids=["from-file", "like"])
def test_format_version_1_file_restores(with_like):
    path = DATA / "checkpoint-v1.npz"
    with np.load(path) as arrays:
        assert json.loads(arrays["__meta__.json"])["format_version"] == 1
    expected = v1_state()
    restored = restore(path, like=expected if with_like else None)
    if with_like:
        assert_states_equal(restored.state, expected)
    else:
        assert restored.state.opt_state is None
        assert_states_equal(restored.state, expected._replace(opt_state=None))
    assert restored.config == {"sizes": [2, 3, 1], "learning_rate": 0.1}
    np.testing.assert_array_equal(restored.history["loss"], np.array([1.0, 0.5], np.float32))
    assert restored.best is None and restored.progress == {}


def test_format_version_1_file_rewritten_as_version_2(tmp_path):
    old = restore(DATA / "checkpoint-v1.npz", like=v1_state())
    path = save(tmp_path / "v2.npz", old.state, config=old.config, history=old.history)
    assert_states_equal(restore(path, like=v1_state()).state, v1_state())
    with np.load(path) as arrays:
        assert json.loads(arrays["__meta__.json"])["format_version"] == 2


# --------------------------------------------------------------------------- resuming


@pytest.mark.slow
def test_resume_from_checkpoint_is_bit_for_bit(tmp_path):
    """3 epochs, save, restore, 3 more epochs == 6 uninterrupted epochs, exactly."""
    digits = data.load_digits()
    x = data.fit_standardizer(digits.x[:150])(digits.x[:150])
    y = digits.y[:150]
    params = mlp.init(jax.random.key(0), [64, 16, 10])
    optimizer = optim.momentum(0.05, 0.9)
    settings = dict(
        loss="softmax_cross_entropy",
        optimizer=optimizer,
        batch_size=32,  # 150 rows: 5 steps per epoch, the last one padded
        key=jax.random.key(1),
    )
    full = fungrad.fit(params, x, y, epochs=6, **settings)
    first = fungrad.fit(params, x, y, epochs=3, **settings)
    path = save(tmp_path / "epoch3.npz", first.state, history=first.history)
    like = TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), settings["key"])
    restored = restore(path, like=like)
    assert int(restored.state.step) == 15
    second = fungrad.fit(params, x, y, epochs=3, initial_state=restored.state, **settings)

    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(second.params), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert_states_equal(second.state, full.state)
    np.testing.assert_array_equal(second.history["loss"], full.history["loss"][3:])
    np.testing.assert_array_equal(restored.history["loss"], full.history["loss"][:3])


# --------------------------------------------------------------------------- template mismatch


@pytest.mark.slow
def test_like_with_another_architecture_is_refused(tmp_path):
    save(tmp_path / "run.npz", make_state(sizes=(4, 5, 3)))
    with pytest.raises(
        CheckpointError,
        match=r"leaf \.params\[0\]\['b'\] is float32\(5,\) .* float32\(6,\) in like",
    ):
        restore(tmp_path / "run.npz", like=make_state(sizes=(4, 6, 3)))
    with pytest.raises(
        CheckpointError, match=r"different structure .* 10 leaves in the file, 6 in like"
    ):
        restore(tmp_path / "run.npz", like=make_state(sizes=(4, 3)))


def test_like_with_another_optimizer_is_refused(tmp_path):
    save(tmp_path / "run.npz", make_state())
    with pytest.raises(CheckpointError, match=r"different structure.*another optimizer"):
        restore(tmp_path / "run.npz", like=make_state(optimizer=optim.adam(0.1)))
    with pytest.raises(TypeError, match=r"^like:"):
        restore(tmp_path / "run.npz", like={"params": 1})


def test_namedtuple_params_need_like(tmp_path):
    class Layer(tuple):  # a registered pytree node fungrad cannot rebuild by name
        pass

    jax.tree_util.register_pytree_node(Layer, lambda t: (tuple(t), None), lambda _, c: Layer(c))
    state = make_state()._replace(params=Layer((jnp.ones(2), jnp.zeros(3))))
    save(tmp_path / "custom.npz", state)
    with pytest.raises(CheckpointError, match=r"params holds a .*Layer.*pass like="):
        restore(tmp_path / "custom.npz")
    assert_states_equal(restore(tmp_path / "custom.npz", like=state).state, state)


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("interruption", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch, interruption):
    path = tmp_path / "run.npz"
    save(path, make_state(), config={"run": 1})
    before = path.read_bytes()
    real_write_array, calls = np.lib.format.write_array, []

    def write_then_fail(file, array, **kwargs):
        calls.append(array.shape)
        if len(calls) == 3:
            file.write(b"half an array")
            raise interruption
        return real_write_array(file, array, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    newer = make_state()._replace(step=jnp.asarray(99, jnp.int32))
    with pytest.raises(type(interruption)):
        save(path, newer, config={"run": 2})
    assert len(calls) == 3
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.npz"]  # no temporary file left behind
    assert restore(path).config == {"run": 1}

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    calls.clear()
    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(type(interruption)):
        save(fresh / "first.npz", newer)
    assert os.listdir(fresh) == []


@pytest.mark.slow
def test_save_replaces_previous_checkpoint(tmp_path):
    path = tmp_path / "run.npz"
    save(path, make_state())
    save(path, make_state()._replace(step=jnp.asarray(99, jnp.int32)))
    assert int(restore(path).state.step) == 99
    assert os.listdir(tmp_path) == ["run.npz"]


@pytest.mark.parametrize("interruption", [OSError(28, "No space left"), KeyboardInterrupt()])
def test_interrupted_atomic_write_keeps_previous_file(tmp_path, interruption):
    target = tmp_path / "history.json"
    write_text(target, '{"old": true}')

    def write_half_then_fail(file):
        file.write(b'{"new": ')
        raise interruption

    with pytest.raises(type(interruption)):
        write_atomically(target, write_half_then_fail)
    assert target.read_text() == '{"old": true}'
    assert os.listdir(tmp_path) == ["history.json"]
    with pytest.raises(type(interruption)):
        write_atomically(tmp_path / "new" / "first.json", write_half_then_fail)
    assert os.listdir(tmp_path / "new") == []


def test_write_text_replaces_atomically(tmp_path):
    write_text(tmp_path / "a" / "config.json", "{}")
    write_text(str(tmp_path / "a" / "config.json"), '{"learning_rate": 0.1, "name": "läuft"}')
    assert json.loads((tmp_path / "a" / "config.json").read_text("utf-8"))["name"] == "läuft"
    assert os.listdir(tmp_path / "a") == ["config.json"]
    with pytest.raises(TypeError, match=r"^text: expected a str, got bytes"):
        write_text(tmp_path / "b.json", b"{}")
    with pytest.raises(TypeError, match=r"^path: expected a str or os.PathLike"):
        write_text(3, "{}")


# --------------------------------------------------------------------------- leftovers


def test_remove_leftovers_removes_only_temporary_files(tmp_path):
    leftovers = [
        ".checkpoint.npz.0123456789ab.tmp",
        ".history.json.abcdefabcdef.tmp",
        ".fungrad-probe.000000000000.tmp",
    ]
    kept = [
        "checkpoint.npz",
        ".checkpoint.npz.tmp",
        ".checkpoint.npz.0123456789AB.tmp",  # upper case: not ours
        ".checkpoint.npz.0123456789a.tmp",  # 11 digits
        ".checkpoint.npz.0123456789abc.tmp",  # 13 digits
        "checkpoint.npz.0123456789ab.tmp",  # no leading dot
        ".0123456789ab.tmp",  # no name
        ".checkpoint.npz.0123456789ab.tmp.bak",
        ".hidden",
    ]
    for name in leftovers + kept:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".folder.0123456789ab.tmp").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".deeper.0123456789ab.tmp").write_bytes(b"x")

    removed = remove_leftovers(tmp_path)
    assert removed == sorted(tmp_path / name for name in leftovers)
    assert sorted(os.listdir(tmp_path)) == sorted([*kept, ".folder.0123456789ab.tmp", "sub"])
    assert os.listdir(tmp_path / "sub") == [".deeper.0123456789ab.tmp"]
    assert remove_leftovers(str(tmp_path)) == []
    assert remove_leftovers(tmp_path / "not-yet") == []
    with pytest.raises(CheckpointError, match=r"checkpoint.npz: is not a directory"):
        remove_leftovers(tmp_path / "checkpoint.npz")


def test_a_killed_saves_leftover_is_found(tmp_path):
    """A file the way a SIGKILL mid-save leaves it: the real temporary name, half written."""
    path = save(tmp_path / "run.npz", make_state())
    real_replace, stranded = os.replace, []

    def killed(source, target):
        stranded.append(Path(source))
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", killed)
        patch.setattr(os, "unlink", lambda _: None)  # the process dies before cleaning up
        with pytest.raises(KeyboardInterrupt):
            save(path, make_state())
    assert os.replace is real_replace and stranded[0].exists()
    assert remove_leftovers(tmp_path) == stranded
    assert os.listdir(tmp_path) == ["run.npz"] and restore(path).state.step == 12


# --------------------------------------------------------------------------- run-folder checks


def test_check_folder_accepts_a_folder_or_a_place_for_one(tmp_path):
    check_folder(tmp_path, needed_bytes=1000, files=["checkpoint.npz", "config.json"])
    (tmp_path / "checkpoint.npz").write_bytes(b"old")  # a file to replace is fine
    check_folder(str(tmp_path), needed_bytes=0, files=("checkpoint.npz",))
    check_folder(tmp_path / "runs" / "new", needed_bytes=10)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz"]  # nothing created, no probe left


def test_check_folder_refuses_files_in_the_way(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(CheckpointError, match=r"^\S*runs: is a file; expected a directory"):
        check_folder(tmp_path / "runs", needed_bytes=0)
    with pytest.raises(
        CheckpointError, match=r"^\S*runs/x: cannot be created: \S*runs is a file; expected a dir"
    ):
        check_folder(tmp_path / "runs" / "x", needed_bytes=0)
    (tmp_path / "run" / "checkpoint.npz").mkdir(parents=True)
    with pytest.raises(CheckpointError) as info:
        check_folder(tmp_path / "run", needed_bytes=0, files=["config.json", "checkpoint.npz"])
    assert str(info.value) == (
        f"{tmp_path / 'run' / 'checkpoint.npz'} is a directory; expected a file or nothing"
    )


def test_check_folder_needs_room_on_the_disk(tmp_path):
    with pytest.raises(CheckpointError) as info:
        check_folder(tmp_path / "run", needed_bytes=10**20)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'run'}: needs about 100000000.0 TB free for the ")
    assert message.endswith(" available") and "\n" not in message


def test_check_folder_names_an_unwritable_folder(tmp_path, monkeypatch):
    real_open = os.open

    def refuse_probe(path, *args, **kwargs):
        if ".fungrad-probe." in os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse_probe)
    with pytest.raises(CheckpointError, match=r"^\S+: cannot write here \(Permission denied\)$"):
        check_folder(tmp_path, needed_bytes=0)
    with pytest.raises(CheckpointError, match=r"/x: cannot write in \S+ to create it \(Permission"):
        check_folder(tmp_path / "x", needed_bytes=0)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_check_folder_with_a_read_only_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(CheckpointError, match=r"locked: cannot write here \(Permission"):
            check_folder(folder, needed_bytes=0)
    finally:
        folder.chmod(0o700)


def test_check_folder_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"^needed_bytes: expected an int >= 0, got -1"):
        check_folder(tmp_path, needed_bytes=-1)
    with pytest.raises(ValueError, match=r"^needed_bytes: expected an int >= 0, got 1.5"):
        check_folder(tmp_path, needed_bytes=1.5)
    with pytest.raises(TypeError, match=r"^files: expected a sequence of file names"):
        check_folder(tmp_path, needed_bytes=0, files="checkpoint.npz")
    with pytest.raises(TypeError, match=r"^folder: expected a str or os.PathLike"):
        check_folder(None, needed_bytes=0)


# --------------------------------------------------------------------------- damaged files


@pytest.fixture
def saved(tmp_path):
    return save(tmp_path / "run.npz", make_state(), history={"loss": [1.0]})


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b[:-10],
        lambda b: b"",
        lambda b: np.random.default_rng(0).bytes(len(b)),
    ],
    ids=["half", "last-bytes", "empty", "random"],
)
def test_truncated_or_random_files(saved, damage):
    saved.write_bytes(damage(saved.read_bytes()))
    with pytest.raises(CheckpointError, match=r"damaged or truncated") as info:
        restore(saved)
    assert str(info.value).startswith(str(saved))


def test_flipped_bit_in_a_leaf_is_caught(saved):
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("params/0/w.npy")
    content = bytearray(saved.read_bytes())
    name_length, extra_length = struct.unpack(
        "<HH", content[info.header_offset + 26 : info.header_offset + 30]
    )
    last_data_byte = info.header_offset + 30 + name_length + extra_length + info.compress_size - 1
    content[last_data_byte] ^= 0x01
    saved.write_bytes(bytes(content))
    with pytest.raises(CheckpointError, match=r"damaged checkpoint .*CRC"):
        restore(saved)


def test_an_npz_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, x=np.ones(3), y=np.zeros(3))
    with pytest.raises(
        CheckpointError, match=r"not a fungrad checkpoint: no __meta__.json .*x.npy, y.npy"
    ):
        restore(path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda m: {**m, "format_version": checkpoint.FORMAT_VERSION + 1},
            r"format version 3, but this fungrad reads version 2 and older; upgrade",
        ),
        (lambda m: {**m, "format_version": "1"}, r"invalid format version '1'"),
        (lambda m: {**m, "format": "something-else"}, r"not a fungrad checkpoint: .*format marker"),
        (lambda m: [1, 2], r"not a fungrad checkpoint"),
        (lambda m: {k: v for k, v in m.items() if k != "leaves"}, r"damaged checkpoint \(KeyError"),
        (lambda m: {k: v for k, v in m.items() if k != "best"}, r"damaged checkpoint \(KeyError"),
        (lambda m: {**m, "progress": [{"name": "x"}]}, r"damaged checkpoint \(KeyError"),
        (
            lambda m: {**m, "structure": {**m["structure"], "params": {"leaf": 99}}},
            r"damaged checkpoint structure",
        ),
    ],
)
def test_foreign_or_future_metadata(saved, change, message):
    rewrite(saved, meta=change)
    with pytest.raises(CheckpointError, match=message):
        restore(saved)


def test_missing_member_and_unreadable_meta(saved, tmp_path):
    rewrite(saved, drop={"params/0/w.npy"})
    with pytest.raises(CheckpointError, match=r"damaged checkpoint"):
        restore(saved)
    broken = tmp_path / "broken.npz"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("__meta__.json", "{not json")
    with pytest.raises(CheckpointError, match=r"unreadable __meta__.json"):
        restore(broken)


def test_missing_file(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(checkpoint.CheckpointNotFoundError, match="^" + str(missing)) as info:
        restore(missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, CheckpointError)
    with pytest.raises(CheckpointError, match="directory"):
        restore(tmp_path)


# --------------------------------------------------------------------------- bad arguments


def test_save_bad_arguments(tmp_path):
    state = make_state()
    result = fungrad.FitResult(state.params, {}, "", 0, state)
    with pytest.raises(TypeError, match=r"^state: .*pass result.state"):
        save(tmp_path / "a.npz", result)
    with pytest.raises(TypeError, match=r"^state: expected a fungrad TrainState"):
        save(tmp_path / "a.npz", tuple(state))
    with pytest.raises(TypeError, match=r"^config: expected a JSON-serialisable dict"):
        save(tmp_path / "a.npz", state, config={"optimizer": object()})
    with pytest.raises(TypeError, match=r"^config: expected a dict"):
        save(tmp_path / "a.npz", state, config=[1])
    with pytest.raises(TypeError, match=r"^history: expected metric name -> numeric array"):
        save(tmp_path / "a.npz", state, history={"loss": ["a", "b"]})
    with pytest.raises(ValueError, match=r"^path: .* is a directory"):
        save(tmp_path, state)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- the format page

FORMAT_PAGE = Path(__file__).parents[1] / "docs" / "checkpoint-format.md"


def page_blocks(language: str) -> list[str]:
    text = FORMAT_PAGE.read_text("utf-8")
    return [block.split("\n```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


def test_format_page_metadata_example_is_what_save_writes(tmp_path):
    (example,) = page_blocks("json")
    params = mlp.init(jax.random.key(0), [2, 1])
    optimizer = optim.momentum(0.1)
    state = TrainState(
        params, optimizer.init(params), jnp.asarray(40, jnp.int32), jax.random.key(1)
    )
    path = save(
        tmp_path / "checkpoint.npz",
        state,
        config={"sizes": [2, 1], "learning_rate": 0.1},
        history={"loss": np.ones(10, np.float32)},
        best=Best(params, epoch=7, value=0.031, metric="val_loss", mode="min"),
        progress={"epoch": np.array(10)},
    )
    with np.load(path) as arrays:
        written = json.loads(arrays["__meta__.json"])
    documented = json.loads(example)
    for meta in (written, documented):
        del meta["fungrad_version"], meta["jax_version"]
    assert documented == written


def test_format_page_reading_examples_run(tmp_path, monkeypatch):
    state = make_state()
    best = Best(scaled(state.params, 2.0), 3, 0.5, "val_loss", "min")
    save(tmp_path / "checkpoint.npz", state, history={"loss": [1.0]}, best=best)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in page_blocks("python"):
        exec(compile(block, str(FORMAT_PAGE), "exec"), namespace)
    assert_trees_equal(namespace["params"], jax.tree.map(np.asarray, state.params))
    np.testing.assert_array_equal(namespace["best_weights"], best.params[0]["w"])
    np.testing.assert_array_equal(draw(namespace["key"]), draw(state.key))

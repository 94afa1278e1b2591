"""Checkpoints: round trips, exact resumption, atomic writes and damaged files."""

from __future__ import annotations

import json
import os
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fungrad
from fungrad import checkpoint, data, mlp, optim
from fungrad.checkpoint import CheckpointError, restore, save
from fungrad.train import TrainState


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


def test_plain_container_state_is_rebuilt_without_like(tmp_path):
    params = mlp.init(jax.random.key(1), [2, 3])
    opt_state = {"velocity": [jnp.ones((2, 3)), (jnp.zeros(3), None)], "count": jnp.asarray(4)}
    state = TrainState(params, opt_state, jnp.asarray(3, jnp.int32), jax.random.key(2))
    restored = restore(save(tmp_path / "plain.npz", state)).state
    assert_states_equal(restored, state)
    assert isinstance(restored.opt_state["velocity"][1], tuple)


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


# --------------------------------------------------------------------------- resuming


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


def test_save_replaces_previous_checkpoint(tmp_path):
    path = tmp_path / "run.npz"
    save(path, make_state())
    save(path, make_state()._replace(step=jnp.asarray(99, jnp.int32)))
    assert int(restore(path).state.step) == 99
    assert os.listdir(tmp_path) == ["run.npz"]


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


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda m: {**m, "format_version": 2},
            r"format version 2, but this fungrad reads version 1 .*upgrade",
        ),
        (lambda m: {**m, "format_version": "1"}, r"invalid format version '1'"),
        (lambda m: {**m, "format": "something-else"}, r"not a fungrad checkpoint: .*format marker"),
        (lambda m: [1, 2], r"not a fungrad checkpoint"),
        (lambda m: {k: v for k, v in m.items() if k != "leaves"}, r"damaged checkpoint \(KeyError"),
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

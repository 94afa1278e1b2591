"""fit and fit_restarts: keep_best, checkpoints during training, and resuming bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fungrad
from fungrad import checkpoint, data, mlp, optim, stopping
from fungrad.train import StopTraining


@pytest.fixture(scope="module")
def problem():
    digits = data.load_digits()
    parts = data.split(digits.x[:300], digits.y[:300], seed=0, validation=0.2, test=0.1)
    standardize = data.fit_standardizer(parts.x_train)
    x = standardize(parts.x_train).astype(np.float32)
    validation = (standardize(parts.x_val).astype(np.float32), parts.y_val)
    return x, parts.y_train, validation


def settings(problem, **extra):
    x, y, validation = problem
    return dict(
        loss="softmax_cross_entropy",
        batch_size=32,  # 206 rows: a padded last batch
        key=jax.random.key(1),
        validation=validation,
        **extra,
    )


def leaves_equal(a, b):
    def plain(leaf):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.key_data(leaf)
        return leaf

    pairs = zip(
        jax.tree.leaves(jax.tree.map(plain, a)),
        jax.tree.leaves(jax.tree.map(plain, b)),
        strict=True,
    )
    return all(np.array_equal(np.asarray(u), np.asarray(v)) for u, v in pairs)


def stop_after(epoch):
    def callback(e, metrics):
        if e + 1 == epoch:
            raise StopTraining("interrupted")

    return callback


PARAMS = [
    {
        "w": jnp.asarray(0.3 * np.random.default_rng(i).standard_normal((n, m)), jnp.float32),
        "b": jnp.zeros(m, jnp.float32),
    }
    for i, (n, m) in enumerate([(64, 12), (12, 10)])
]
"""A 64-12-10 MLP's float32 parameters, drawn with NumPy (nothing compiles at import)."""


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["gd", "sgd", "momentum", "nesterov", "ema", "adam"])
def test_interrupted_and_resumed_equals_uninterrupted(problem, optimizer, tmp_path):
    x, y, _ = problem
    kw = settings(problem, optimizer=optim.from_name(optimizer, 0.05), keep_best="val_loss")
    if optimizer == "gd":
        kw["batch_size"] = None
    full = fungrad.fit(PARAMS, x, y, epochs=6, **kw)
    path = tmp_path / "run.npz"
    first = fungrad.fit(
        PARAMS, x, y, epochs=6, checkpoint=path, save_every=0, callback=stop_after(2), **kw
    )
    assert first.epochs_run == 2 and first.stop_reason == "interrupted"
    resumed = fungrad.fit(PARAMS, x, y, epochs=6, initial_state=path, **kw)
    assert resumed.epochs_run == 6
    assert leaves_equal(resumed.state, full.state)
    assert leaves_equal(resumed.params, full.params)
    assert resumed.best_epoch == full.best_epoch
    for name, values in full.history.items():
        np.testing.assert_array_equal(resumed.history[name], values)


@pytest.mark.slow
def test_keep_best_returns_the_best_epochs_params(problem):
    x, y, validation = problem
    kw = settings(problem, optimizer=optim.sgd(2.0))  # too large a step: val_loss wanders
    last = fungrad.fit(PARAMS, x, y, epochs=8, **kw)
    best = fungrad.fit(PARAMS, x, y, epochs=8, keep_best="val_loss", **kw)
    epoch = int(np.nanargmin(last.history["val_loss"])) + 1
    assert best.best_epoch == epoch
    assert leaves_equal(best.state, last.state)  # the state to resume from is the last one
    again = fungrad.fit(PARAMS, x, y, epochs=epoch, **kw)
    assert leaves_equal(best.params, again.params)
    assert last.best_epoch is None


@pytest.mark.slow
def test_keep_best_for_accuracy_takes_the_maximum(problem):
    x, y, _ = problem
    result = fungrad.fit(
        PARAMS,
        x,
        y,
        epochs=5,
        keep_best="val_accuracy",
        **settings(problem, optimizer=optim.sgd(0.5)),
    )
    accuracy = result.history["val_accuracy"]
    assert accuracy[result.best_epoch - 1] == np.max(accuracy)
    assert result.best_epoch - 1 == int(np.argmax(accuracy))  # ties keep the first


def test_keep_best_names_a_recorded_metric(problem):
    x, y, _ = problem
    with pytest.raises(ValueError, match="keep_best: expected the name of a recorded metric"):
        fungrad.fit(
            PARAMS,
            x,
            y,
            epochs=1,
            keep_best="val_los",
            **settings(problem, optimizer=optim.sgd(0.1)),
        )


@pytest.mark.slow
def test_checkpoint_saves_during_training_and_at_the_end(problem, tmp_path):
    x, y, _ = problem
    saved = []
    fungrad.fit(
        PARAMS, x, y, epochs=3, checkpoint=saved.append, save_every=0,
        **settings(problem, optimizer=optim.sgd(0.1)),
    )  # fmt: skip
    assert [int(s.progress["epoch"]) for s in saved] == [1, 2, 3]
    assert [len(s.history["loss"]) for s in saved] == [1, 2, 3]
    rarely = []
    fungrad.fit(
        PARAMS, x, y, epochs=3, checkpoint=rarely.append, save_every=3600,
        **settings(problem, optimizer=optim.sgd(0.1)),
    )  # fmt: skip
    assert [int(s.progress["epoch"]) for s in rarely] == [3]  # always after the last epoch
    assert saved[-1].config["fit"]["sizes"] == [64, 12, 10]


@pytest.mark.slow
def test_a_diverging_run_saves_its_last_finite_state(problem, tmp_path):
    x, y, _ = problem
    path = tmp_path / "run.npz"
    result = fungrad.fit(
        PARAMS, x, y * 0 + 1, epochs=20, checkpoint=path,
        **settings(problem, optimizer=optim.sgd(1e30)),
    )  # fmt: skip
    assert result.diverged
    restored = checkpoint.restore(path)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(restored.state.params))


@pytest.mark.slow
def test_resume_with_a_smaller_cap_is_refused(problem, tmp_path):
    x, y, _ = problem
    kw = settings(problem, optimizer=optim.sgd(0.1))
    path = tmp_path / "run.npz"
    fungrad.fit(PARAMS, x, y, epochs=3, checkpoint=path, **kw)
    with pytest.raises(ValueError, match="epochs: the checkpoint has already trained 3 epochs"):
        fungrad.fit(PARAMS, x, y, epochs=3, initial_state=path, **kw)


@pytest.mark.slow
def test_resume_from_another_architecture_is_refused(problem, tmp_path):
    x, y, _ = problem
    kw = settings(problem, optimizer=optim.sgd(0.1))
    path = tmp_path / "run.npz"
    fungrad.fit(PARAMS, x, y, epochs=1, checkpoint=path, **kw)
    other = mlp.init(jax.random.key(0), [64, 13, 10])
    with pytest.raises(checkpoint.CheckpointError, match=r"initial_state: .*params\[0\]\['b'\]"):
        fungrad.fit(other, x, y, epochs=2, initial_state=path, **kw)
    state = fungrad.fit(PARAMS, x, y, epochs=1, **kw).state
    with pytest.raises(ValueError, match="initial_state: leaf"):
        fungrad.fit(other, x, y, epochs=2, initial_state=state, **kw)


@pytest.mark.slow
def test_resume_compiles_the_epoch_once(problem, tmp_path, count_compilations):
    x, y, _ = problem
    kw = settings(problem, optimizer=optim.momentum(0.05), keep_best="val_loss")
    path = tmp_path / "run.npz"
    fungrad.fit(PARAMS, x, y, epochs=2, checkpoint=path, callback=stop_after(1), **kw)
    with count_compilations() as compiled:
        fungrad.fit(PARAMS, x, y, epochs=2, initial_state=path, **kw)
    assert not [name for name in compiled if "lambda" in name or "advance" in name]


RESTART_STOP = stopping.no_improvement("val_loss", 2)


def restart_settings(problem):
    return settings(
        problem,
        optimizer=optim.factory("momentum"),
        learning_rates=[0.01, 0.3, 5.0],
        keep_best="val_loss",
        stop=RESTART_STOP,
    )


@pytest.mark.slow
def test_restarts_resumed_equal_uninterrupted(problem, tmp_path):
    x, y, _ = problem
    starts = [mlp.init(k, [64, 12, 10]) for k in jax.random.split(jax.random.key(3), 3)]
    kw = restart_settings(problem)
    full = fungrad.fit_restarts(starts, x, y, epochs=7, **kw)
    path = tmp_path / "runs.npz"
    first = fungrad.fit_restarts(
        starts, x, y, epochs=7, checkpoint=path, save_every=0, callback=stop_after(2), **kw
    )
    assert int(np.max(first.epochs_run)) < 7
    resumed = fungrad.fit_restarts(starts, x, y, epochs=7, initial_state=path, **kw)
    assert leaves_equal(resumed.state, full.state)
    assert leaves_equal(resumed.params, full.params)
    np.testing.assert_array_equal(resumed.epochs_run, full.epochs_run)
    np.testing.assert_array_equal(resumed.best_epochs, full.best_epochs)
    assert resumed.best_index == full.best_index and resumed.stop_reasons == full.stop_reasons


@pytest.mark.slow
def test_restarts_keep_best_ranks_runs_by_their_best_epoch(problem):
    x, y, _ = problem
    starts = [mlp.init(k, [64, 12, 10]) for k in jax.random.split(jax.random.key(3), 3)]
    result = fungrad.fit_restarts(starts, x, y, epochs=6, **restart_settings(problem))
    runs = np.arange(3)
    figures = result.history["val_loss"][runs, result.best_epochs - 1]
    assert result.metric == "val_loss"
    assert result.best_index == int(np.nanargmin(figures))
    for r in runs:
        alone = fungrad.fit(
            starts[r],
            x, y, epochs=6, keep_best="val_loss", stop=RESTART_STOP,
            optimizer=optim.momentum([0.01, 0.3, 5.0][r]),
            **{k: v for k, v in settings(problem).items() if k != "key"}, key=result.keys[r],
        )  # fmt: skip
        assert alone.best_epoch == result.best_epochs[r]
        np.testing.assert_allclose(
            jax.tree.leaves(alone.params)[0], jax.tree.leaves(result.params)[0][r], atol=1e-5
        )

"""A run saved by the command line continues in Python, and a Python checkpoint is refused by
``fungrad train --resume`` with one line."""

import jax
import numpy as np
import pytest

import fungrad
from fungrad import checkpoint, data, mlp, optim
from fungrad.cli import main


@pytest.mark.slow
def test_a_command_line_run_continues_with_fit(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--epochs", "2", "--hidden", "16", "--quiet", "--no-plot"]
    assert main(argv) == 0
    saved = fungrad.load_run(run)
    digits = data.load_digits()
    parts = data.split(digits.x, digits.y, seed=0, validation=0.1, test=0.2)
    standardize = data.fit_standardizer(parts.x_train)
    result = fungrad.fit(
        saved.last_params,
        standardize(parts.x_train),
        parts.y_train,
        loss="softmax_cross_entropy",
        optimizer=optim.momentum(0.05, 0.9),
        epochs=3,
        batch_size=32,
        key=jax.random.split(jax.random.key(0))[1],
        validation=(standardize(parts.x_val), parts.y_val),
        keep_best="val_loss",
        initial_state=run / "checkpoint.npz",
    )
    assert result.epochs_run == 3
    np.testing.assert_array_equal(result.history["loss"][:2], saved.history["loss"])


@pytest.mark.slow
def test_a_python_checkpoint_is_refused_by_resume(tmp_path, capsys):
    x = np.linspace(-1, 1, 16, dtype=np.float32)[:, None]
    path = tmp_path / "api" / "checkpoint.npz"
    fungrad.fit(
        mlp.init(jax.random.key(0), [1, 4, 1]), x, 2 * x, loss="l2", optimizer=optim.gd(0.1),
        epochs=2, key=jax.random.key(1), checkpoint=path,
    )  # fmt: skip
    assert checkpoint.restore(path).config["fit"]["sizes"] == [1, 4, 1]
    assert main(["train", "--resume", str(path.parent)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Python API" in err[0] and "initial_state" in err[0]

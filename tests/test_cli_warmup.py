"""``fungrad train`` compiles its after-training evaluation while it trains, in a thread.

Each table here has a row count and a hidden width no other test uses, so its evaluation
programs are not in JAX's in-memory cache from an earlier test: they must compile, and they
must compile in the warm-up thread, never on the main thread after the last epoch.
"""

import threading

import jax
import numpy as np
import pytest

from fungrad import runs
from fungrad.cli import main

# Each test here trains a whole program: the full suite runs them.
pytestmark = pytest.mark.slow


def _table(path, rows: int, regression: bool) -> None:
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 3))
    y = x @ [3.0, -2.0, 1.0] * 40 + 500 if regression else (x[:, 0] > 0).astype(int) + 1
    with path.open("w") as file:
        file.write("a,b,c,target\n")
        for row, target in zip(x, y, strict=True):
            file.write(",".join(f"{v:.5f}" for v in row) + f",{target}\n")


@pytest.fixture
def compiles_by_thread():
    """A list of ``(thread name, program name)``, one per XLA compilation while it is open."""
    seen = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            seen.append((threading.current_thread().name, kwargs.get("fun_name", "")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    yield seen
    jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize(("rows", "hidden", "regression"), [(131, 7, False), (149, 9, True)])
def test_the_evaluation_compiles_while_training(
    tmp_path, compiles_by_thread, rows, hidden, regression
):
    table = tmp_path / "t.csv"
    _table(table, rows, regression)
    task = "regression" if regression else "classification"
    argv = ["train", "--data", str(table), "--label-column", "target", "--task", task,
            "--hidden", str(hidden), "--epochs", "2", "--out", str(tmp_path / "run"),
            "--quiet", "--no-plot"]  # fmt: skip
    assert main(argv) == 0
    evaluation = {"jit(eval_fn)", "jit(_forward)"}
    warmed = [name for thread, name in compiles_by_thread if thread.endswith("warm-up")]
    after = [name for thread, name in compiles_by_thread if thread == "MainThread"]
    assert "jit(eval_fn)" in warmed
    assert regression == ("jit(_forward)" in warmed)
    assert not evaluation & set(after), compiles_by_thread
    # The warm-up evaluated zeros; the summary's figures are the trained run's own.
    run = runs.load_run(tmp_path / "run")
    assert any(np.any(leaf != 0) for leaf in jax.tree.leaves(run.params))

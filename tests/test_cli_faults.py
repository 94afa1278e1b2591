"""``fungrad train`` killed at random moments, then resumed: nothing torn, nothing different.

Each trial runs the real command in a subprocess, kills it with SIGKILL, SIGINT or SIGTERM
at a random epoch and a random moment in it (drawn from a fixed seed; for one SIGKILL, the
moment a checkpoint's temporary file appears after that epoch, i.e. inside a save), checks
what the folder holds, resumes it with ``fungrad train --resume DIR`` and compares the final
checkpoint, bit for bit, with an uninterrupted run of the same settings.

The subprocesses share a persistent XLA compilation cache in the test's temporary folder, so
only the first run of each program pays for compiling it.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from fungrad import checkpoint

# Each test here starts processes or compiles whole programs: the full suite runs them.
pytestmark = pytest.mark.slow

TRAIN = [
    "train", "--hidden", "16", "--epochs", "40", "--save-every", "0", "--batch-size", "64",
    "--quiet", "--no-plot",
]  # fmt: skip
RESTARTS = ["--restarts", "2", "--learning-rates", "0.01,0.1"]
KILL_EPOCHS = (2, 30)  # the kill comes after an epoch drawn from these (of 40): never at the end
MAX_DELAY = 0.03  # and up to this many seconds later (a save takes milliseconds)
SEED = 20240517
TIMEOUT = 300


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder to run in, and the environment: CPU, a compilation cache shared by the runs."""
    folder = tmp_path_factory.mktemp("faults")
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(folder / "xla-cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    env.pop("FUNGRAD_DEBUG", None)
    return folder, env


def start(workspace, *argv):
    folder, env = workspace
    return subprocess.Popen(
        [sys.executable, "-m", "fungrad", *map(str, argv)],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(process):
    """``(status, stdout, stderr)`` once ``process`` has ended."""
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"fungrad did not finish in {TIMEOUT} s: {err}")
    return process.returncode, out, err


def train(workspace, *argv):
    return finish(start(workspace, *argv))


@pytest.fixture(scope="module")
def reference(workspace):
    """The uninterrupted single run, restored."""
    status, _, err = train(workspace, *TRAIN, "--out", "reference")
    assert status == 0, err
    return checkpoint.restore(workspace[0] / "reference" / "checkpoint.npz")


@pytest.fixture(scope="module")
def restarts_reference(workspace):
    """The uninterrupted restarts run (2 restarts x 2 learning rates), restored."""
    status, _, err = train(workspace, *TRAIN, *RESTARTS, "--out", "restarts-reference")
    assert status == 0, err
    return checkpoint.restore(workspace[0] / "restarts-reference" / "checkpoint.npz")


# --------------------------------------------------------------------------- helpers


def temporaries(folder, prefix="."):
    return sorted(n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(".tmp"))


def wait_for(process, ready, what):
    """Poll (every few ms) until ``ready()``; fail if the run ends or hangs first."""
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the run ended (status {process.returncode}) before {what}: {err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} within {TIMEOUT} s")
        time.sleep(0.003)


def kill_time(seed) -> tuple[int, float]:
    """The epoch after which a trial's signal comes, and the delay after it."""
    rng = np.random.default_rng([SEED, seed])
    return int(rng.integers(*KILL_EPOCHS, endpoint=True)), float(rng.uniform(0, MAX_DELAY))


def wait_for_epoch(process, folder, epoch: int) -> int:
    """Wait until the saved views describe ``epoch`` epochs; the epochs they describe."""
    history = folder / "history.json"
    wait_for(process, lambda: history.is_file() and epochs_in_views(folder) >= epoch,
             f"the save of epoch {epoch}")  # fmt: skip
    return epochs_in_views(folder)


def epochs_in_views(folder) -> int:
    """The epochs ``history.json`` describes (of the furthest run)."""
    view = json.loads((folder / "history.json").read_text())
    return max(len(run["history"]["loss"]) for run in view["runs"])


def saved_epoch(saved) -> int:
    return int(np.max(saved.progress["epoch"]))


def kill_inside_a_save(process, folder) -> None:
    """SIGKILL the moment a checkpoint's temporary file shows (it is then usually left behind,
    for the resume to clean up)."""
    deadline = time.monotonic() + TIMEOUT
    while not temporaries(folder, ".checkpoint.npz."):  # no sleep: a save takes milliseconds
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run ended before a save could be caught")
    process.send_signal(signal.SIGKILL)
    process.wait(TIMEOUT)


def assert_same_run(resumed, reference):
    """Bit-identical parameters (last and best), best epoch and history."""
    for ours, theirs in zip(
        jax.tree.leaves(resumed.state.params), jax.tree.leaves(reference.state.params), strict=True
    ):
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    assert reference.best is not None and resumed.best is not None
    for ours, theirs in zip(
        jax.tree.leaves(resumed.best.params), jax.tree.leaves(reference.best.params), strict=True
    ):
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    assert np.array_equal(resumed.best.epoch, reference.best.epoch)
    assert resumed.history.keys() == reference.history.keys()
    for name, values in reference.history.items():
        assert np.array_equal(resumed.history[name], values, equal_nan=True), name
    assert np.array_equal(resumed.progress["epoch"], reference.progress["epoch"])


def assert_not_torn(folder):
    """Every file there is whole: the checkpoint restores, the views parse."""
    saved = checkpoint.restore(folder / "checkpoint.npz")
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "fungrad-run" and config["epochs"] == 40
    # The views are written right after the checkpoint: a kill in between leaves them one
    # save behind, never ahead.
    assert saved_epoch(saved) - 1 <= epochs_in_views(folder) <= saved_epoch(saved)
    return saved


def assert_stopped_cleanly(status, err, signal_number, folder, seen):
    """SIGINT/SIGTERM: 128 + signal, one line on how to resume, the views of the last save."""
    assert status == 128 + signal_number, err
    last = err.strip().splitlines()[-1]
    assert f"resume with: fungrad train --resume {folder.name}" in last, err
    saved = checkpoint.restore(folder / "checkpoint.npz")
    assert epochs_in_views(folder) == saved_epoch(saved)
    assert saved_epoch(saved) >= max(seen, 1)
    assert saved_epoch(saved) < 40, "the signal came after training ended"
    return saved


def resume_and_compare(workspace, folder, reference):
    status, _, err = train(workspace, "train", "--resume", folder.name, "--quiet", "--no-plot")
    assert status == 0, err
    assert temporaries(folder) == []
    resumed = checkpoint.restore(folder / "checkpoint.npz")
    assert epochs_in_views(folder) == saved_epoch(reference)
    assert_same_run(resumed, reference)


# --------------------------------------------------------------------------- trials

TRIALS = [
    pytest.param(1, "SIGKILL", "inside a save", id="SIGKILL-inside-a-save"),
    pytest.param(2, "SIGINT", "random", id="SIGINT-random"),
    pytest.param(3, "SIGKILL", "random", id="SIGKILL-random"),
    pytest.param(4, "SIGTERM", "random", id="SIGTERM-random"),
]


@pytest.mark.parametrize(("trial", "signal_name", "when"), TRIALS)
def test_a_killed_run_resumes_to_the_same_parameters(
    workspace, reference, trial, signal_name, when
):
    number = signal.Signals[signal_name]
    epoch, delay = kill_time(trial)
    folder = workspace[0] / f"{signal_name}-{when.replace(' ', '-')}"
    process = start(workspace, *TRAIN, "--out", folder.name)
    seen = wait_for_epoch(process, folder, epoch)  # at most the epochs saved when it lands
    if when == "inside a save":
        kill_inside_a_save(process, folder)
    else:
        time.sleep(delay)
        seen = epochs_in_views(folder)
        assert process.poll() is None, "the run ended before the signal"
        process.send_signal(number)
    status, _, err = finish(process)
    if number == signal.SIGKILL:
        assert status == -signal.SIGKILL
        assert saved_epoch(assert_not_torn(folder)) >= seen
    else:
        assert_stopped_cleanly(status, err, number, folder, seen)
    resume_and_compare(workspace, folder, reference)


def test_interrupted_restarts_resume_to_the_same_parameters(workspace, restarts_reference):
    epoch, delay = kill_time(0)
    folder = workspace[0] / "restarts-SIGINT"
    process = start(workspace, *TRAIN, *RESTARTS, "--out", folder.name)
    wait_for_epoch(process, folder, epoch)
    time.sleep(delay)
    seen = epochs_in_views(folder)
    assert process.poll() is None, "the run ended before the signal"
    process.send_signal(signal.SIGINT)
    status, _, err = finish(process)
    saved = assert_stopped_cleanly(status, err, signal.SIGINT, folder, seen)
    assert saved.state.params[0]["w"].shape == (4, 64, 16)  # 2 restarts x 2 learning rates
    resume_and_compare(workspace, folder, restarts_reference)


def test_a_second_signal_aborts_at_once_even_while_compiling(workspace):
    """Two Ctrl-C's while XLA compiles (the main thread inside one C call): exit 130 at once."""
    folder = workspace[0] / "double"
    process = start(workspace, *TRAIN, "--hidden", "23", "--out", "double")
    wait_for(process, folder.exists, "the run folder")  # claimed just before compiling
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    status, _, err = finish(process)
    assert status == 130, err
    assert time.monotonic() - sent < 5
    assert "Traceback" not in err and "SIGINT received" in err
    if (folder / "checkpoint.npz").exists():
        checkpoint.restore(folder / "checkpoint.npz")  # whatever was saved is whole

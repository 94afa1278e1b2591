"""Every example runs end to end in its quick mode and prints a result that makes sense.

The examples run as scripts (``python examples/<name>.py --quick``), each in its own process
as a user would run it, several at a time to keep the wall time down.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

# Each test here starts processes or compiles whole programs: the full suite runs them.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT_S = 300


def _number(output: str, label: str) -> float:
    """The number printed after ``label`` (and an optional ``=`` or ``:``)."""
    match = re.search(re.escape(label) + r"\s*[=:]?\s*([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)", output)
    assert match, f"no {label!r} in the output:\n{output}"
    return float(match.group(1))


def _numbers(output: str, label: str) -> list[float]:
    pattern = re.escape(label) + r"\s*[=:]?\s*([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)"
    return [float(value) for value in re.findall(pattern, output)]


def check_parabola(output: str, out: Path) -> None:
    assert abs(_number(output, "final w =")) < 1e-2
    assert math.isclose(_number(output, "final L(w) ="), 1.0, abs_tol=1e-3)


def check_rolling_ball(output: str, out: Path) -> None:
    gd = _number(output, "gradient descent: final w =")
    momentum = _number(output, "momentum (beta = 0.9): final w =")
    assert 0 < gd < 0.2, "gradient descent should stall just right of the flat point 0"
    assert abs(momentum + 1.5) < 1e-2, "momentum should reach the minimum -3/2"
    if "plot written" in output:
        assert (out / "rolling_ball.png").stat().st_size > 0
    else:
        assert "matplotlib is not installed" in output


def check_backprop_vs_jax(output: str, out: Path) -> None:
    assert _number(output, "max difference:") < 1e-12


def check_digits(output: str, out: Path) -> None:
    assert _number(output, "test accuracy =") >= 0.95


def check_regression(output: str, out: Path) -> None:
    assert _number(output, "final loss =") < 0.05
    assert _number(output, "loss against the clean sine =") < 0.02


def check_restarts(output: str, out: Path) -> None:
    assert _number(output, "best val_accuracy =") >= 0.98
    assert _number(output, "best run's test accuracy =") >= 0.95


def check_optax_plugin(output: str, out: Path) -> None:
    initial = _number(output, "initial loss =")
    finals = _numbers(output, "final loss =")
    assert len(finals) == 4
    assert all(final < initial / 20 for final in finals), finals


def check_custom_activation(output: str, out: Path) -> None:
    assert _number(output, "derivative max difference:") < 1e-12
    assert _number(output, "gradient max difference:") < 1e-12
    match = re.search(r"loss ([0-9.]+) -> ([0-9.]+)", output)
    assert match and float(match.group(2)) < float(match.group(1)) / 10


def check_per_sample_grads(output: str, out: Path) -> None:
    assert _number(output, "batch gradient, max difference:") < 1e-12
    assert _number(output, "jax.vmap(jax.grad), max difference:") < 1e-12


def check_regression_csv(output: str, out: Path) -> None:
    assert "model inputs: area_m2, rooms, neighbourhood=Centre," in output  # no index column
    spread = _number(output, "price standard deviation =")
    assert _number(output, "test RMSE =") < 0.3 * spread, "far from converged with the defaults"
    predicted = np.array(_numbers(output, "predicted"))
    worth = np.array(_numbers(output, "worth"))
    assert len(predicted) == len(worth) == 4
    assert np.all(np.abs(predicted - worth) < 0.15 * worth)


def check_lesson_graphs(output: str, out: Path) -> None:
    assert _number(output, "max difference from the closed forms:") < 1e-12
    for name in ("y_a_times_a_plus_b", "z_sin_x_cubed", "z_x_squared_sin_x"):
        assert (out / f"{name}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert (out / f"{name}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
        assert "digraph" in (out / f"{name}.dot").read_text()


def check_cnn_digits(output: str, out: Path) -> None:
    assert _number(output, "test accuracy =") >= 0.9  # 4 epochs in quick mode; 0.98+ in full


def check_residual_mlp(output: str, out: Path) -> None:
    assert _number(output, "graph vs jax gradient, max relative difference:") < 1e-5
    variance = _number(output, "variance of the clean function =")
    assert _number(output, "loss against the clean function =") < 0.1 * variance


CHECKS = {
    "parabola": check_parabola,
    "rolling_ball": check_rolling_ball,
    "backprop_vs_jax": check_backprop_vs_jax,
    "digits": check_digits,
    "regression": check_regression,
    "regression_csv": check_regression_csv,
    "restarts": check_restarts,
    "optax_plugin": check_optax_plugin,
    "custom_activation": check_custom_activation,
    "per_sample_grads": check_per_sample_grads,
    "lesson_graphs": check_lesson_graphs,
    "cnn_digits": check_cnn_digits,
    "residual_mlp": check_residual_mlp,
}


def _run(name: str, out: Path) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MPLBACKEND="Agg", XLA_PYTHON_CLIENT_PREALLOCATE="false")
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(out)]
        if name in ("rolling_ball", "lesson_graphs")
        else [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        cwd=out,
        env=env,
    )


@pytest.fixture(scope="module")
def launched(request, tmp_path_factory) -> dict[str, tuple[Future, Path]]:
    """Start every selected example at once (as many at a time as there are CPUs)."""
    module = sys.modules[__name__]
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "module", None) is module and hasattr(item, "callspec")
    ] or list(CHECKS)
    root = tmp_path_factory.mktemp("examples")
    with ThreadPoolExecutor(max_workers=min(len(selected), os.cpu_count() or 1)) as pool:
        yield {name: (pool.submit(_run, name, root / name), root / name) for name in selected}


def test_every_example_is_checked():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(CHECKS)


@pytest.mark.parametrize("name", list(CHECKS))
def test_example(name: str, launched) -> None:
    future, out = launched[name]
    result = future.result()
    assert result.returncode == 0, f"{name}.py failed:\n{result.stdout}\n{result.stderr}"
    CHECKS[name](result.stdout, out)

"""The benchmark script runs end to end in its quick mode (peers that are not installed are skipped)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Each test here starts processes or compiles whole programs: the full suite runs them.
pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def check_benchmark_report(stdout: str, figures: dict) -> None:
    """``benchmarks/run.py --quick``'s table (``stdout``) and JSON (``figures``)."""
    assert "| batch | variant | ms/step | best ms/step | samples/s | GFLOP/s |" in stdout
    assert "| fungrad fit (backprop) |" in stdout
    assert "| raw JAX (scan + optax) |" in stdout
    assert "## Targets" in stdout
    assert figures["mode"] == "quick"
    names = {row["name"] for row in figures["steps"]}
    assert {"fungrad fit (backprop)", "fungrad fit (autodiff)", "raw JAX (scan + optax)"} <= names
    for row in figures["steps"]:
        assert row["step_s"] > 0
        assert row["vs_floor_paired"] > 0
        if row["name"].startswith("fungrad fit"):
            # fit caches its compiled epoch: a second call with the same optimizer object
            # compiles nothing.
            assert row["compiles_first_call"] >= 1
            assert row["compiles_second_call"] == 0, row
    assert "vs raw JAX | quartiles | of medians |" in stdout
    prefixes = {"equinox": "optax + equinox", "flax": "optax + flax", "torch": "PyTorch eager"}
    for module, prefix in prefixes.items():
        measured = any(name.startswith(prefix) for name in names)
        skipped = f"{module}: not installed" in stdout
        assert measured != skipped, f"{module}: expected its rows or a line saying it is skipped"


SAVING = SCRIPT.parent / "saving.py"


def test_quick_saving_benchmark_counts_the_saves_and_writes_json(tmp_path):
    out = tmp_path / "saving.json"
    completed = subprocess.run(
        [sys.executable, str(SAVING), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert (
        "| workload | rounds | A s | B s | C s | saves in B | B/A paired (quartiles) |"
        in completed.stdout
    )
    figures = json.loads(out.read_text())
    assert figures["mode"] == "quick"
    assert figures["save_every_s"] == 10.0
    assert [row["name"][:3] for row in figures["workloads"]] == ["(a)", "(b)"]
    for row in figures["workloads"]:
        # A (and A2, A again) never saves, B saves at least after its last epoch, C after
        # every epoch.
        assert set(row["saves"]["A"]) == set(row["saves"]["A2"]) == {0}, row["saves"]
        assert min(row["saves"]["B"]) >= 1, row["saves"]
        assert set(row["saves"]["C"]) == {row["epochs"]}, row["saves"]
        assert all(t > 0 for times in row["times_s"].values() for t in times)
        assert row["control_paired"] > 0
        assert row["parts"]["file_bytes"] > 0
        assert row["parts"]["save_s"] > 0


JOB = SCRIPT.parent / "job.py"


def test_quick_job_benchmark_pairs_fungrad_train_with_the_raw_script(tmp_path):
    out = tmp_path / "job.json"
    completed = subprocess.run(
        [sys.executable, str(JOB), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "| round | raw s | cold s | warm s | cold / raw | warm / raw |" in completed.stdout
    figures = json.loads(out.read_text())
    assert figures["mode"] == "quick"
    (row,) = figures["rounds"]
    for variant in ("raw", "cold", "warm"):
        assert row[variant]["process_s"] > 0
        # Two epochs of the same job: both learn the digits well past chance.
        assert row[variant]["test_accuracy"] > 0.5, row
    assert row["cold"]["epochs_run"] == row["warm"]["epochs_run"] == 2
    assert row["cold_vs_raw"] == row["cold"]["process_s"] / row["raw"]["process_s"]
    assert figures["ratios"]["cold"]["median"] == row["cold_vs_raw"]
    terminal = figures["terminal"]
    assert terminal["lines"][0]["line"].startswith("fungrad train")
    assert 0 < terminal["first_line_s"] < terminal["process_s"]
    assert any(line["line"].startswith("test ") for line in terminal["lines"])


DEVICE = SCRIPT.parent / "device.sh"


def test_quick_device_script_records_every_step_and_goes_on_after_a_failure(tmp_path):
    # An interpreter that refuses the float64 check: that step must be recorded as failed,
    # with its message, and every later step must still run.
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" check --dtype float64 "*) echo "no float64 here" >&2; exit 3 ;; esac\n'
        f'exec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    out = tmp_path / "out"
    completed = subprocess.run(
        # fungrad check and the quick tests are covered by tests of their own: skipped here.
        ["bash", str(DEVICE), "--quick", "--skip", "check-float32,tests-quick", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": str(python)},
    )
    assert completed.returncode == 1, completed.stderr[-4000:]
    report = json.loads((out / "device.json").read_text())
    assert report["mode"] == "quick"
    assert report["backend"] == "cpu"
    steps = {step["name"]: step for step in report["steps"]}
    assert report["failed"] == ["check-float64"]
    assert steps["check-float64"]["exit_code"] == 3
    assert "no float64 here" in steps["check-float64"]["stderr_tail"]
    for name in ("backend", "bench"):
        assert steps[name]["status"] == "ok", steps[name]
    for name in ("check-float32", "tests-quick"):
        assert steps[name]["status"] == "skipped: --skip", steps[name]
    # No GPU here: the GPU-only parts are skipped, saying why.
    assert steps["scaling"]["status"].startswith("skipped")
    # The benchmark of fit against the raw floor runs there in its quick mode (the only
    # test that runs it: it takes a while).
    log = (out / "device.log").read_text()
    bench_stdout = log.split("===== bench:")[1].split("----- bench: stderr")[0]
    check_benchmark_report(bench_stdout, report["bench"])
    assert {row["runs"] for row in report["bench"]["restarts"]} == {1, 2}
    markdown = (out / "device.md").read_text()
    assert "| check-float64 | failed | 3 |" in markdown
    assert "### Targets" in markdown
    assert "===== tests-quick" not in log and "===== check-float64" in log


GRAPH = SCRIPT.parent / "graph.py"


def test_quick_graph_benchmark_pairs_the_engine_with_jax_grad(tmp_path):
    out = tmp_path / "graph.json"
    completed = subprocess.run(
        [sys.executable, str(GRAPH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "| model | batch | graph ms | jax ms | ratio (paired) |" in completed.stdout
    assert "## Targets" in completed.stdout
    figures = json.loads(out.read_text())
    assert figures["mode"] == "quick"
    assert [(r["model"], r["batch"]) for r in figures["gradients"]] == [("mlp", 8), ("cnn", 8)]
    for row in figures["gradients"]:
        assert row["graph_s"] > 0 and row["jax_s"] > 0 and row["ratio"] > 0
        # Both compute the same float32 loss and gradient.
        assert row["largest_relative_difference"] < 1e-4, row
        assert len(row["load_start"]) == 3
    fit = {row["name"]: row for row in figures["fit"]["rows"]}
    assert set(fit) == {"fungrad fit (graph)", "fungrad fit (jax)", "raw JAX (scan + optax)"}
    assert fit["fungrad fit (graph)"]["vs_floor_paired"] > 0
    assert fit["fungrad fit (graph)"]["compiles_later"] == 0  # the epoch compiled once
    for row in figures["compile"]:
        assert row["graph_s"] > 0 and row["jax_s"] > 0
        assert min(row["hlo_instructions"].values()) > 0
        assert min(row["jaxpr_equations"].values()) > 0
    assert len(figures["targets"]) == 5
    assert all(isinstance(t["met"], bool) for t in figures["targets"])

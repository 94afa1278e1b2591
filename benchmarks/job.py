"""The whole job: a default ``fungrad train`` against a minimal raw-JAX script, process to process.

Both do the same job from a fresh Python process: import, load the bundled digits (the same
file), split and standardise, initialise a 64-64-10 relu MLP (He normal), train 30 epochs of
momentum SGD (learning rate 0.05, beta 0.9, batch 32, softmax cross-entropy, float32; each
epoch one jitted ``lax.scan`` over shuffled minibatches, the validation loss computed in the
same call, the best epoch's parameters kept), evaluate on the test part and save the
parameters to a file. fungrad runs as a user runs it, ``python -m fungrad train --out DIR
--quiet`` with every other setting at its default (so it also writes its checkpoint, history,
plot and summary); the raw-JAX script is written here, to a temporary file, in plain JAX and
NumPy (no optax, no fungrad import) and run as ``python script.py``.

Timing: the wall time of each whole process, interpreter start to exit. Rounds alternate the
order of the two (raw first in even rounds, fungrad first in odd ones). In each round:

- **raw**: the raw script, with JAX's persistent compilation cache off;
- **cold**: ``fungrad train`` with ``FUNGRAD_CACHE_DIR`` pointing at a fresh, empty folder;
- **warm**: the same ``fungrad train`` again, its cache now filled by the cold run.

The ratios are paired: cold/raw and warm/raw within each round, then the median (with the
smallest and largest) over rounds. The phases of fungrad's runs come from their
``summary.json`` (compile, train and in-process wall time), the raw script's from the line it
prints. One more ``fungrad train`` without ``--quiet``, its stderr on a pseudo-terminal as a
person at a terminal would have it and an empty cache, gives the time to its first output
line and to each later line.

Usage::

    python benchmarks/job.py                    # 5 rounds: about 3 minutes on 2 busy cores
    python benchmarks/job.py --runs 3 --json job.json
    python benchmarks/job.py --quick            # one round, 2 epochs: a smoke run
"""

from __future__ import annotations

import argparse
import ast
import datetime
import fcntl
import importlib.util
import json
import os
import platform
import pty
import re
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from importlib import metadata
from pathlib import Path

EPOCHS = 30
COLD_TARGET, WARM_TARGET = 1.25, 0.8
SHOWN_LINES = 6  # of the terminal's lines, in the printed table

RAW_SCRIPT = '''\
"""The default fungrad train job in raw JAX and NumPy: argv = digits.npz, out.npz, epochs."""
import time

start = time.perf_counter()
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

phases = {"import_s": time.perf_counter() - start}
source, out, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
sizes, batch, learning_rate, beta = [64, 64, 10], 32, 0.05, 0.9
with np.load(source) as arrays:
    x, y = arrays["x"].astype(np.float32), arrays["y"].astype(np.int32)
n = len(y)
order = np.random.default_rng(0).permutation(n)
n_test, n_val = math.ceil(0.2 * n), math.ceil(0.1 * n)
test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
mean, std = x[train].mean(0), x[train].std(0)
std[std == 0] = 1.0
x = (x - mean) / std
phases["load_s"] = time.perf_counter() - start - sum(phases.values())


@jax.jit
def init(key):
    keys = jax.random.split(key, len(sizes) - 1)
    he = jax.nn.initializers.he_normal()
    return [
        {"w": he(k, (a, b), jnp.float32), "b": jnp.zeros((b,), jnp.float32)}
        for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


def forward(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss(params, x, y):
    logits = forward(params, x)
    picked = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


@jax.jit
def epoch(params, velocity, key, x, y, x_val, y_val):
    steps = y.shape[0] // batch
    rows = jax.random.permutation(key, y.shape[0])[: steps * batch].reshape(steps, batch)

    def step(carry, rows):
        params, velocity = carry
        grads = jax.grad(loss)(params, x[rows], y[rows])
        velocity = jax.tree.map(lambda v, g: beta * v + g, velocity, grads)
        params = jax.tree.map(lambda p, v: p - learning_rate * v, params, velocity)
        return (params, velocity), None

    (params, velocity), _ = lax.scan(step, (params, velocity), rows)
    return params, velocity, loss(params, x_val, y_val)


@jax.jit
def evaluate(params, x, y):
    return loss(params, x, y), jnp.mean(jnp.argmax(forward(params, x), axis=1) == y)


params = init(jax.random.key(0))
velocity = jax.tree.map(jnp.zeros_like, params)
phases["init_s"] = time.perf_counter() - start - sum(phases.values())
x_train, y_train = jnp.asarray(x[train]), jnp.asarray(y[train])
x_val, y_val = jnp.asarray(x[val]), jnp.asarray(y[val])
best, best_loss = params, math.inf
for key in jax.random.split(jax.random.key(1), epochs):
    params, velocity, val_loss = epoch(params, velocity, key, x_train, y_train, x_val, y_val)
    if float(val_loss) < best_loss:
        best, best_loss = params, float(val_loss)
phases["train_s"] = time.perf_counter() - start - sum(phases.values())
test_loss, test_accuracy = evaluate(best, jnp.asarray(x[test]), jnp.asarray(y[test]))
arrays = {f"{name}{i}": np.asarray(layer[name]) for i, layer in enumerate(best) for name in "wb"}
np.savez(out, test_loss=float(test_loss), test_accuracy=float(test_accuracy), **arrays)
phases["evaluate_save_s"] = time.perf_counter() - start - sum(phases.values())
phases["test_accuracy"] = float(test_accuracy)
print("phases", phases)
'''


# --------------------------------------------------------------------------- the processes


def digits_file() -> Path:
    """The bundled digits fungrad loads, found without importing fungrad."""
    spec = importlib.util.find_spec("fungrad")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("job.py: fungrad is not importable from this Python")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "digits.npz"


def environment(**changes: str) -> dict[str, str]:
    """This process's environment without any compile-cache settings, plus ``changes``; the
    fungrad this benchmark found comes first on ``PYTHONPATH``, installed or not."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FUNGRAD_COMPILE_CACHE", "FUNGRAD_CACHE_DIR", "JAX_COMPILATION_CACHE_DIR")
    }
    path = [str(digits_file().parents[2]), *filter(None, [env.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(path)
    env.update(changes)
    return env


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """Run ``command`` to the end; ``(wall seconds, stdout)``. A failure stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"job.py: {' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return wall, done.stdout


def fungrad_command(out: Path, epochs: int, quiet: bool = True) -> list[str]:
    command = [sys.executable, "-m", "fungrad", "train", "--out", str(out)]
    if epochs != EPOCHS:
        command += ["--epochs", str(epochs)]
    return command + (["--quiet"] if quiet else [])


def run_fungrad(work: Path, name: str, cache: Path, epochs: int) -> dict:
    """One ``fungrad train`` into ``work/name`` with its cache in ``cache``."""
    out = work / name
    wall, _ = timed(fungrad_command(out, epochs), environment(FUNGRAD_CACHE_DIR=str(cache)), work)
    summary = json.loads((out / "summary.json").read_text())
    keep = ("compile_time_s", "train_time_s", "wall_time_s", "test_accuracy", "epochs_run")
    return {"process_s": wall, **{k: summary[k] for k in keep}}


def run_raw(work: Path, name: str, script: Path, digits: Path, epochs: int) -> dict:
    """One run of the raw-JAX script, with JAX's persistent cache off."""
    env = environment(JAX_ENABLE_COMPILATION_CACHE="false")
    wall, stdout = timed(
        [sys.executable, str(script), str(digits), str(work / f"{name}.npz"), str(epochs)],
        env,
        work,
    )
    line = next(line for line in stdout.splitlines() if line.startswith("phases "))
    return {"process_s": wall, **ast.literal_eval(line.removeprefix("phases "))}


def first_output(work: Path, epochs: int) -> dict:
    """A ``fungrad train`` (not quiet, empty cache) on a pseudo-terminal, as a person at a
    terminal runs it: when each line appeared, seconds after the process was started."""
    env = environment(FUNGRAD_CACHE_DIR=str(work / "cache-terminal"))
    controller, terminal = pty.openpty()
    # A window 100 columns wide: without a size, tqdm draws a bar of width zero.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    start = time.perf_counter()
    process = subprocess.Popen(
        fungrad_command(work / "terminal", epochs, quiet=False),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        env=env,
        cwd=work,
    )
    os.close(terminal)
    lines, pending = [], ""
    while True:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(controller, 4096).decode(errors="replace")
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        now = time.perf_counter() - start
        pending += chunk
        *complete, pending = re.split(r"[\r\n]+", pending)
        lines += [(now, text) for text in map(_plain, complete) if text.strip()]
    process.wait()
    os.close(controller)
    wall = time.perf_counter() - start
    return {
        "first_line_s": lines[0][0] if lines else None,
        "process_s": wall,
        "lines": _distinct(lines),
    }


def _plain(text: str) -> str:
    """``text`` without terminal control sequences."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).strip()


def _distinct(lines: list[tuple[float, str]]) -> list[dict]:
    """The first time each line appeared; a progress bar's redraws count as one line, kept at
    its first and its last drawing."""
    seen, kept, bar = set(), [], None
    for when, text in lines:
        if text.startswith("epochs:"):
            bar = {"s": round(when, 3), "line": text[:100]}
        kind = "epochs:" if text.startswith("epochs:") else text
        if kind not in seen:
            seen.add(kind)
            kept.append({"s": round(when, 3), "line": text[:100]})
    if bar is not None and bar not in kept:
        index = next(i for i, line in enumerate(kept) if line["line"].startswith("epochs:"))
        kept.insert(index + 1, bar)
    return kept


# --------------------------------------------------------------------------- rounds and report


def measure(runs: int, epochs: int, work: Path) -> list[dict]:
    """``runs`` rounds of raw, cold and warm, the order alternated between rounds."""
    script = work / "raw_job.py"
    script.write_text(RAW_SCRIPT)
    digits = digits_file()
    # Untimed: bring Python, JAX and fungrad's files into the operating system's file cache.
    timed(
        [sys.executable, "-c", "import jax, numpy, matplotlib, optax, fungrad.train"],
        environment(),
        work,
    )
    rounds = []
    for index in range(runs):
        cache = work / f"cache-{index}"
        steps = {
            "raw": lambda i=index: run_raw(work, f"raw-{i}", script, digits, epochs),
            "fungrad": lambda i=index, c=cache: {
                "cold": run_fungrad(work, f"cold-{i}", c, epochs),
                "warm": run_fungrad(work, f"warm-{i}", c, epochs),
            },
        }
        order = ["raw", "fungrad"] if index % 2 == 0 else ["fungrad", "raw"]
        found = {name: steps[name]() for name in order}
        row = {"round": index + 1, "order": order, "raw": found["raw"], **found["fungrad"]}
        row["cold_vs_raw"] = row["cold"]["process_s"] / row["raw"]["process_s"]
        row["warm_vs_raw"] = row["warm"]["process_s"] / row["raw"]["process_s"]
        rounds.append(row)
        progress(
            f"round {index + 1}/{runs}: raw {row['raw']['process_s']:.2f} s, "
            f"cold {row['cold']['process_s']:.2f} s ({row['cold_vs_raw']:.2f}x), "
            f"warm {row['warm']['process_s']:.2f} s ({row['warm_vs_raw']:.2f}x)"
        )
    return rounds


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def report(rounds: list[dict], terminal: dict, args, started: float, load_start) -> dict:
    """Every figure of the run, as written to ``--json``."""
    ratios = {k: summarise([r[f"{k}_vs_raw"] for r in rounds]) for k in ("cold", "warm")}
    phases = {
        variant: {
            key: statistics.median(r[variant][key] for r in rounds)
            for key in rounds[0][variant]
            if isinstance(rounds[0][variant][key], float)
        }
        for variant in ("raw", "cold", "warm")
    }
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/job.py", *sys.argv[1:]]),
        "mode": "quick" if args.quick else "full",
        "epochs": args.epochs,
        "machine": machine(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "ratios": ratios,
        "targets": {
            "cold": {"at_most": COLD_TARGET, "met": ratios["cold"]["median"] <= COLD_TARGET},
            "warm": {"at_most": WARM_TARGET, "met": ratios["warm"]["median"] <= WARM_TARGET},
        },
        "median_phases_s": phases,
        "terminal": terminal,
        "rounds": rounds,
        "seconds": time.perf_counter() - started,
    }


def machine() -> dict:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                model,
            )
    except OSError:
        pass
    versions = {}
    for name in ("jax", "jaxlib", "fungrad"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        **versions,
    }


def render(figures: dict) -> str:
    """The report as markdown tables."""
    ratios, phases, rounds = figures["ratios"], figures["median_phases_s"], figures["rounds"]
    load = figures["load_average"]
    lines = [
        f"# The whole job: default `fungrad train` vs raw JAX ({figures['mode']}, "
        f"{figures['epochs']} epochs, {len(rounds)} rounds)",
        "",
        f"{figures['machine']['cpu']}, {figures['machine']['cores']} cores, jax "
        f"{figures['machine']['jax']}; load average {load['start'][0]:.1f} at the start, "
        f"{load['end'][0]:.1f} at the end",
        "",
        "| round | raw s | cold s | warm s | cold / raw | warm / raw |",
        "|---|---|---|---|---|---|",
    ]
    for r in rounds:
        lines.append(
            f"| {r['round']} | {r['raw']['process_s']:.2f} | {r['cold']['process_s']:.2f} | "
            f"{r['warm']['process_s']:.2f} | {r['cold_vs_raw']:.2f} | {r['warm_vs_raw']:.2f} |"
        )
    lines += ["", "| ratio | median | min | max | target | met |", "|---|---|---|---|---|---|"]
    for name, target in (("cold", COLD_TARGET), ("warm", WARM_TARGET)):
        r = ratios[name]
        met = "yes" if figures["targets"][name]["met"] else "no"
        lines.append(
            f"| {name} / raw | {r['median']:.2f}x | {r['min']:.2f}x | {r['max']:.2f}x | "
            f"<= {target}x | {met} |"
        )
    lines += ["", "Median phases (s):", "", "| run | phase | s |", "|---|---|---|"]
    for variant, found in phases.items():
        lines += [f"| {variant} | {key} | {value:.3f} |" for key, value in found.items()]
    terminal = figures["terminal"]
    lines += [
        "",
        f"On a terminal (empty cache): first line after {terminal['first_line_s']:.2f} s, "
        f"exit after {terminal['process_s']:.2f} s.",
        "",
        "| s | line |",
        "|---|---|",
    ]
    shown = terminal["lines"][:SHOWN_LINES]
    lines += [f"| {line['s']:.2f} | `{line['line'].replace('|', '/')}` |" for line in shown]
    if len(terminal["lines"]) > len(shown):
        lines.append(f"| | ... {len(terminal['lines']) - len(shown)} more lines (in the JSON) |")
    return "\n".join(lines)


_START = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds of raw, cold and warm (5)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    parser.add_argument("--quick", action="store_true", help="one round of 2 epochs (smoke run)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs: expected a positive integer, got {args.runs}")
    args.epochs = 2 if args.quick else EPOCHS
    runs = 1 if args.quick else args.runs
    started, load_start = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="fungrad-job-") as folder:
        work = Path(folder)
        rounds = measure(runs, args.epochs, work)
        progress("on a terminal: time to the first line")
        terminal = first_output(work, args.epochs)
    figures = report(rounds, terminal, args, started, load_start)
    print(render(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

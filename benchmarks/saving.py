"""The cost of saving checkpoints during training, as a fraction of the training time.

``fungrad.fit(..., checkpoint=PATH, save_every=SECONDS)`` saves after an epoch once at least
``save_every`` seconds have passed since the last save, and always after the last epoch. A
save reads the whole carry back to the host (``jax.device_get``), encodes it as an ``.npz``
archive and writes it atomically (temporary file, ``fsync``, rename, ``fsync`` of the folder).

Variants of the same ``fit`` call (same data, params, optimizer object, key, epochs), one
process, alternating in rounds (forwards in even rounds, backwards in odd ones):

- A: no checkpoint;
- B: ``checkpoint=`` a file in a temporary folder, ``save_every=10`` (the default);
- C: the same file, ``save_every=0``: a save after every epoch;
- A2: A again, a control: A2/A is what the paired comparison reads when there is no effect.

Each fit's wall time is measured around the call, after a warm-up call of every variant (the
compiled epoch is cached on the program and the optimizer object, so timed calls compile
nothing). B's cost is the median over rounds of the paired ratio B/A (the two timed in the
same round, seconds apart); C's per-save cost is ``(C - A) / saves`` per round. Every save is
counted: a callback (the same in every variant) looks at the checkpoint file after each epoch.
Then one save of the run's last state is timed alone, in parts: ``device_get`` of the carry, the
whole ``checkpoint.save`` on the same disk, the same save on a RAM disk (``/dev/shm``: encoding
and copying, no disk), and the file's bytes written on the disk with ``write_atomically`` and
plainly (no ``fsync``).

The workloads: (a) the default ``fungrad train`` run (bundled digits, MLP 64-64-10, momentum,
batch 32, 30 epochs, validation split and ``keep_best="val_loss"``, all taken from the command
line's own defaults), as it is and with more epochs; (b) the MLP 784-512-512-10 of
``benchmarks/run.py`` on synthetic MNIST-sized data, batch 32, momentum SGD.

Usage::

    python benchmarks/saving.py          # full run (about 6 minutes on 2 CPU cores), writes
                                         # benchmarks/results-saving-cpu.json
    python benchmarks/saving.py --quick  # smoke run, a few seconds after compiling
    python benchmarks/saving.py --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fungrad import checkpoint, mlp, optim, train

SAVE_EVERY = 10.0  # seconds: fit's default, and the command line's
TARGET = 0.02  # saving at the default cadence should cost under 2% of the training time
RESULTS = Path(__file__).resolve().parent / "results-saving-cpu.json"
BENCHMARK_SIZES = (784, 512, 512, 10)  # benchmarks/run.py's model
# "A2" is A again: a control, whose ratio to A is the resolution of the paired comparison.
VARIANTS = ("A", "B", "C", "A2")


@dataclass(frozen=True)
class Config:
    default_epochs: int  # (a) as the command line runs it
    long_epochs: int | None  # (a) long enough for a stable timing (None: skipped)
    big_epochs: int  # (b)
    big_samples: int
    rounds: tuple[int, int, int]  # per workload, after the warm-up
    repeats: int  # timings of one save in parts

    def workloads(self):
        """``(build, rounds)`` per workload; each is built when its turn comes."""
        builds = [
            lambda: default_run(self.default_epochs),
            None if self.long_epochs is None else lambda: default_run(self.long_epochs),
            lambda: benchmark_model(self.big_epochs, self.big_samples),
        ]
        return [(b, r) for b, r in zip(builds, self.rounds, strict=True) if b is not None]


FULL = Config(30, 1000, 20, 4096, rounds=(15, 7, 7), repeats=30)
QUICK = Config(2, None, 2, 256, rounds=(1, 1, 1), repeats=2)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values) -> float:
    return float(statistics.median(values)) if len(values) else float("nan")


def quartiles(values) -> tuple[float, float]:
    if len(values) < 2:
        return (median(values), median(values))
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return float(low), float(high)


# --------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    """One ``fit`` call, less its checkpoint options."""

    name: str
    params: list
    x: np.ndarray
    y: np.ndarray
    optimizer: object  # one object for every call, so the compiled epoch is reused
    key: jax.Array
    options: dict

    def fit(self, **saving):
        return train.fit(
            self.params, self.x, self.y, optimizer=self.optimizer, key=self.key,
            **self.options, **saving,
        )  # fmt: skip


def default_run(epochs: int) -> Workload:
    """``fungrad train`` with every default: its settings, data, split, init and fit options."""
    from fungrad.cli.parser import build_parser
    from fungrad.cli.prepare import prepare
    from fungrad.cli.settings import default_learning_rate, new_config

    config = new_config(build_parser().parse_args(["train"]))
    config["learning_rate"] = config["learning_rate"] or default_learning_rate(config)
    data = prepare(config)
    init_key, train_key = jax.random.split(jax.random.key(config["seed"]))
    parts = data.parts
    return Workload(
        name=f"(a) digits {'-'.join(map(str, data.sizes))}, {epochs} epochs",
        params=mlp.init(init_key, data.sizes, dtype=jnp.float32, activation=config["activation"]),
        x=parts.x_train, y=parts.y_train,
        optimizer=optim.from_name(config["optimizer"], config["learning_rate"], beta=config["beta"]),
        key=train_key,
        options=dict(
            loss=data.loss, epochs=epochs, batch_size=config["batch_size"],
            activation=config["activation"], output_activation=config["output_activation"],
            gradients=config["gradients"], validation=(parts.x_val, parts.y_val),
            keep_best=config["keep_best"],
        ),
    )  # fmt: skip


def benchmark_model(epochs: int, samples: int) -> Workload:
    """``benchmarks/run.py``'s task: standard normal ``x`` (N, 784), uniform labels 0..9."""
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (samples, BENCHMARK_SIZES[0]), jnp.float32)
    y = jax.random.randint(ky, (samples,), 0, BENCHMARK_SIZES[-1], jnp.int32)
    return Workload(
        name=f"(b) synthetic 784-512-512-10, {epochs} epochs",
        params=mlp.init(jax.random.key(1), BENCHMARK_SIZES),
        x=x, y=y, optimizer=optim.momentum(0.01, 0.9), key=jax.random.key(2),
        options=dict(loss="softmax_cross_entropy", epochs=epochs, batch_size=32),
    )  # fmt: skip


# --------------------------------------------------------------------------- timing fits


class SaveCounter:
    """A fit callback that counts the saves: the file changes at each atomic rename."""

    def __init__(self, path: Path):
        self.path, self.saves = path, 0
        self.seen = self._look()

    def _look(self):
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        return found.st_ino, found.st_mtime_ns

    def __call__(self, epoch=None, metrics=None) -> None:
        now = self._look()
        if now != self.seen:
            self.seen, self.saves = now, self.saves + 1


def timed_fit(workload: Workload, variant: str, target: Path) -> tuple[float, int, object]:
    """One call of ``variant``: ``(seconds, saves, result)``; ``target`` is removed first."""
    target.unlink(missing_ok=True)
    counter = SaveCounter(target)
    saving = {
        "A": {},
        "A2": {},
        "B": {"checkpoint": target, "save_every": SAVE_EVERY},
        "C": {"checkpoint": target, "save_every": 0.0},
    }[variant]
    start = time.perf_counter()
    result = workload.fit(callback=counter, **saving)
    seconds = time.perf_counter() - start
    counter()  # the save after the last epoch
    return seconds, counter.saves, result


def run_rounds(workload: Workload, rounds: int, folder: Path) -> dict:
    """Warm up each variant once, then ``rounds`` rounds of A, B, C, A2 (reversed in odd rounds)."""
    target = folder / "checkpoint.npz"
    for variant in VARIANTS:
        timed_fit(workload, variant, target)
    times = {variant: [] for variant in VARIANTS}
    saves = {variant: [] for variant in VARIANTS}
    for index in range(rounds):
        for variant in VARIANTS if index % 2 == 0 else VARIANTS[::-1]:
            seconds, count, _ = timed_fit(workload, variant, target)
            times[variant].append(seconds)
            saves[variant].append(count)
        progress(
            f"  round {index + 1}/{rounds}: "
            + ", ".join(f"{v} {times[v][-1]:.3f} s" for v in VARIANTS)
        )
    return {"times_s": times, "saves": saves}


# --------------------------------------------------------------------------- one save in parts


def last_snapshot(workload: Workload):
    """The Checkpoint that fit hands its target after the last epoch (host-side already)."""
    snapshots = []
    workload.fit(checkpoint=snapshots.append, save_every=1e9)
    return snapshots[-1]


def timed(call, repeats: int) -> float:
    """Median seconds of ``call()`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return median(times)


def device_get_seconds(snapshot, repeats: int) -> float:
    """``jax.device_get`` of fresh device copies of everything a save reads back."""
    tree = (snapshot.state.params, snapshot.state.opt_state, snapshot.history, snapshot.progress)
    if snapshot.best is not None:
        tree += (snapshot.best.params,)
    times = []
    for _ in range(repeats):
        on_device = jax.block_until_ready(jax.tree.map(lambda a: jnp.array(a, copy=True), tree))
        start = time.perf_counter()
        jax.device_get(on_device)
        times.append(time.perf_counter() - start)
    return median(times)


def plain_write_seconds(folder: Path, content: bytes, repeats: int) -> float:
    """Writing ``content`` to a new file without ``fsync`` or rename (into the page cache)."""
    times = []
    for index in range(repeats):
        path = folder / f"plain-{index}.bin"
        start = time.perf_counter()
        with open(path, "xb") as file:
            file.write(content)
        times.append(time.perf_counter() - start)
        path.unlink()
    return median(times)


def save_parts(workload: Workload, folder: Path, repeats: int) -> dict:
    """One save of the run's last state, timed alone and in parts (seconds, medians)."""
    snapshot = last_snapshot(workload)

    def save(path):
        checkpoint.save(
            path, snapshot.state, config=snapshot.config, history=snapshot.history,
            best=snapshot.best, progress=snapshot.progress,
        )  # fmt: skip

    on_disk = folder / "parts.npz"
    parts = {"save_s": timed(lambda: save(on_disk), repeats)}
    content = on_disk.read_bytes()
    parts["file_bytes"] = len(content)
    parts["device_get_s"] = device_get_seconds(snapshot, repeats)
    parts["atomic_write_s"] = timed(
        lambda: checkpoint.write_atomically(on_disk, lambda file: file.write(content)), repeats
    )
    parts["plain_write_s"] = plain_write_seconds(folder, content, repeats)
    parts["save_ram_disk_s"] = float("nan")
    if os.path.isdir("/dev/shm"):
        ram = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="fungrad-saving-"))
        try:
            parts["save_ram_disk_s"] = timed(lambda: save(ram / "parts.npz"), repeats)
        finally:
            shutil.rmtree(ram, ignore_errors=True)
    return parts


# --------------------------------------------------------------------------- figures


def figures(workload: Workload, measured: dict, parts: dict) -> dict:
    """Medians, paired per-round ratios and the costs as fractions of A's time."""
    times, saves = measured["times_s"], measured["saves"]
    epochs = workload.options["epochs"]
    a, b, c, again = (np.asarray(times[v]) for v in VARIANTS)
    ratio_b = b / a
    per_save = (c - a) / np.maximum(np.asarray(saves["C"]), 1)
    final_save = b - a
    per_save_s = median(per_save)
    a_s = median(a)
    # At the default cadence a run of T seconds saves at most floor(T / 10) + 1 times (one
    # every 10 s at most, and the last); in a long run that is one save per 10 s of training.
    most_saves = math.floor(a_s / SAVE_EVERY) + 1
    return {
        "name": workload.name,
        "epochs": epochs,
        "median_s": {v: median(times[v]) for v in VARIANTS},
        "saves": saves,
        "times_s": times,
        "b_over_a_paired": median(ratio_b),
        "b_over_a_quartiles": quartiles(ratio_b),
        "b_over_a_of_medians": median(b) / a_s,
        "b_overhead": median(ratio_b) - 1,
        "final_save_s": median(final_save),
        "final_save_quartiles_s": quartiles(final_save),
        "b_over_a_of_minima": float(b.min() / a.min()),
        "control_paired": median(again / a),
        "control_quartiles": quartiles(again / a),
        "c_over_a_paired": median(c / a),
        "per_save_s": per_save_s,
        "per_save_quartiles_s": quartiles(per_save),
        "per_save_of_minima_s": float((c.min() - a.min()) / max(saves["C"])),
        "at_most_saves_at_default": most_saves,
        "bound_at_default": most_saves * per_save_s / a_s,
        "steady_cadence": per_save_s / SAVE_EVERY,
        "parts": parts,
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
    return {
        "cpu": model, "cores": os.cpu_count() or 0, "platform": platform.platform(),
        "python": platform.python_version(), "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
    }  # fmt: skip


def filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on, from ``/proc/mounts`` (Linux)."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                _, point, fstype, *_ = line.split()
                if str(path).startswith(point) and len(point) > len(best):
                    best, kind = point, fstype
    except OSError:
        pass
    return kind


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"


def _spread(value: float, quartiles, digits: int = 3) -> str:
    low, high = quartiles
    return f"{value:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def render(report: dict) -> str:
    lines = [
        f"Checkpoint cost, {report['machine']['cores']} cores {report['machine']['cpu']}, "
        f"JAX {report['machine']['jax']} on {report['machine']['jax_backend']}; checkpoint on "
        f"{report['filesystem']}; load average {report['load_average']['start'][0]:.2f} -> "
        f"{report['load_average']['end'][0]:.2f}",
        "",
        "| workload | rounds | A s | B s | C s | saves in B | B/A paired (quartiles) "
        "| control: A again / A | final save ms (B-A) | per save ms, (C-A)/saves (quartiles) "
        "| most at 10 s, a run of A's length | a long run at 10 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["workloads"]:
        med, saves_b = row["median_s"], sorted(set(row["saves"]["B"]))
        lines.append(
            f"| {row['name']} | {len(row['times_s']['A'])} | {med['A']:.3f} | {med['B']:.3f} "
            f"| {med['C']:.3f} | {','.join(map(str, saves_b))} "
            f"| {_spread(row['b_over_a_paired'], row['b_over_a_quartiles'])} "
            f"| {_spread(row['control_paired'], row['control_quartiles'])} "
            f"| {_ms(row['final_save_s'])} "
            f"| {_spread(row['per_save_s'] * 1e3, [q * 1e3 for q in row['per_save_quartiles_s']], 1)} "
            f"| {_pct(row['bound_at_default'])} | {_pct(row['steady_cadence'])} |"
        )
    lines += [
        "",
        "| workload | file kB | device_get ms | save ms | save on RAM disk ms "
        "| its bytes: write+fsync+rename ms | plain write ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["workloads"]:
        p = row["parts"]
        lines.append(
            f"| {row['name']} | {p['file_bytes'] / 1e3:.1f} | {_ms(p['device_get_s'])} "
            f"| {_ms(p['save_s'])} | {_ms(p['save_ram_disk_s'])} | {_ms(p['atomic_write_s'])} "
            f"| {_ms(p['plain_write_s'])} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (smoke run)")
    parser.add_argument(
        "--json", metavar="PATH", help=f"where to write the figures (full run: {RESULTS.name})"
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    load_start = os.getloadavg()
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="fungrad-saving-"))
    rows = []
    try:
        for build, rounds in config.workloads():
            workload = build()
            progress(workload.name)
            measured = run_rounds(workload, rounds, folder)
            rows.append(figures(workload, measured, save_parts(workload, folder, config.repeats)))
        kind = filesystem(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "benchmarks/saving.py", *(argv or sys.argv[1:])]),
        "mode": "quick" if args.quick else "full",
        "config": asdict(config),
        "save_every_s": SAVE_EVERY,
        "target": TARGET,
        "machine": machine(),
        "filesystem": kind,
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "seconds": time.perf_counter() - started,
        "workloads": rows,
    }
    print(render(report))
    out = args.json or (None if args.quick else RESULTS)
    if out is not None:
        import json

        Path(out).write_text(json.dumps(report, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

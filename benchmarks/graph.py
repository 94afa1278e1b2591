"""Benchmark the general engine (``fungrad.graph``) against ``jax.grad``, side by side.

Three comparisons, each a ratio of two variants measured in the same process, interleaved
round by round (forwards in even rounds, backwards in odd ones), the ratio being the median
over rounds of the per-round ratio (the house conventions of ``benchmarks/run.py``, whose
training-step variants this script reuses):

1. **The gradient alone**: ``jax.jit(fungrad.graph.value_and_grad(loss))`` against
   ``jax.jit(jax.value_and_grad(loss))`` on the MLP 784-512-512-10 (relu, softmax
   cross-entropy, float32) at batch 32 and 1024, and on the digits CNN (``fungrad.cnn``,
   8x8x1 images, conv16-conv32-10) at batch 32 and 256. Each round times a loop of about
   0.1 s of calls of each. The two values are also compared (they must agree to rounding).
2. **The trainer**: ``fungrad.fit(..., gradients="graph")`` against the raw-JAX floor of
   ``benchmarks/run.py`` (a jitted ``lax.scan`` epoch with ``jax.value_and_grad`` and optax)
   at batch 32, with ``fit(..., gradients="jax")`` beside them, each epoch timed in the
   steady state as ``run.py`` times it.
3. **Trace and compile time**: ``jax.jit(f).lower(*args).compile()`` for the engine's
   gradient and ``jax.grad``'s (each round builds both functions afresh, so nothing is
   reused from an earlier round but what JAX caches for the functions they call), split
   into tracing + lowering and the XLA compile; with the size of what each produces
   (jaxpr equations, nested ones included, and optimized HLO instructions). One warm-up
   round is not counted.

The persistent compilation cache is switched off. The load average is recorded at the
start and end of each measurement (the machine may be shared).

Usage::

    python benchmarks/graph.py                  # full run (a few minutes on 2 CPU cores)
    python benchmarks/graph.py --quick          # smoke run: tiny batches, one round
    python benchmarks/graph.py --json out.json  # also write every figure as JSON
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import jax

jax.config.update("jax_enable_compilation_cache", False)  # compile times must be cold

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import run  # noqa: E402  (benchmarks/run.py: the training-step variants and bookkeeping)
from jax.extend.core import ClosedJaxpr, Jaxpr  # noqa: E402

import fungrad  # noqa: E402
from fungrad import cnn, graph, mlp  # noqa: E402

GRADIENT_TARGET, FIT_TARGET, COMPILE_AIM = 1.05, 1.10, 1.5
CNN_SIDE, CLASSES = 8, 10


@dataclass(frozen=True)
class Config:
    mlp_batches: tuple[int, ...]
    cnn_batches: tuple[int, ...]
    grad_rounds: int
    grad_seconds: float  # about how long one timed loop of gradient calls runs
    fit_batch: int
    fit_samples: int
    fit_rounds: int
    fit_epochs_per_round: int
    compile_rounds: int


FULL = Config(
    mlp_batches=(32, 1024),
    cnn_batches=(32, 256),
    grad_rounds=15,
    grad_seconds=0.1,
    fit_batch=32,
    fit_samples=4096,  # 128 steps an epoch, as benchmarks/run.py at batch 32
    fit_rounds=20,
    fit_epochs_per_round=2,
    compile_rounds=5,
)
QUICK = Config(
    mlp_batches=(8,),
    cnn_batches=(8,),
    grad_rounds=1,
    grad_seconds=0.01,
    fit_batch=32,
    fit_samples=256,
    fit_rounds=1,
    fit_epochs_per_round=1,
    compile_rounds=1,
)


def load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


# --------------------------------------------------------------------------- problems


@dataclass
class Problem:
    """A loss ``objective(params, x, y)`` of a model, at one batch."""

    model: str
    batch: int
    objective: Callable
    params: object
    x: jax.Array
    y: jax.Array

    @property
    def args(self) -> tuple:
        return self.params, self.x, self.y


def _mean_loss(apply: Callable) -> Callable:
    loss = fungrad.get_loss(run.LOSS)

    def objective(params, x, y):
        return jnp.mean(loss.fn(apply(params, x), y))

    return objective


_MLP_OBJECTIVE = _mean_loss(mlp.apply)
_CNN_OBJECTIVE = _mean_loss(cnn.apply)


def problem(model: str, batch: int) -> Problem:
    """The MLP 784-512-512-10 or the digits CNN, with standard normal inputs at ``batch``."""
    kx, ky = jax.random.split(jax.random.key(batch))
    if model == "mlp":
        params, objective, features = mlp.init(jax.random.key(1), run.SIZES), _MLP_OBJECTIVE, 784
    else:
        params = cnn.init(jax.random.key(1), side=CNN_SIDE, n_outputs=CLASSES)
        objective, features = _CNN_OBJECTIVE, CNN_SIDE * CNN_SIDE
    x = jax.random.normal(kx, (batch, features), jnp.float32)
    y = jax.random.randint(ky, (batch,), 0, CLASSES, jnp.int32)
    return Problem(model, batch, objective, params, x, y)


def gradient_functions(objective: Callable) -> dict[str, Callable]:
    """The two gradients compared, freshly built: the engine's first, JAX's second."""
    return {
        "graph": graph.value_and_grad(objective),
        "jax": jax.value_and_grad(objective),
    }


def _largest_difference(mine, theirs) -> float:
    """``max |mine - theirs| / max |theirs|`` over the value and every gradient leaf."""
    worst = 0.0
    for a, b in zip(
        jax.tree_util.tree_leaves(mine), jax.tree_util.tree_leaves(theirs), strict=True
    ):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        worst = max(worst, float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)))
    return worst


# --------------------------------------------------------------------------- measurements


def _interleaved(functions: dict[str, Callable], args: tuple, config: Config) -> dict:
    """Per-round seconds per call of each function, in alternating order."""
    start = time.perf_counter()
    jax.block_until_ready(functions["jax"](*args))
    calls = max(1, int(config.grad_seconds / max(time.perf_counter() - start, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in functions}
    for round_index in range(config.grad_rounds):
        order = list(functions) if round_index % 2 == 0 else list(reversed(functions))
        for name in order:
            start = time.perf_counter()
            for _ in range(calls):
                out = functions[name](*args)
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - start) / calls)
    return {"calls_per_round": calls, "times_s": times}


def measure_gradient(model: str, batch: int, config: Config) -> dict:
    """The engine's jitted gradient against ``jax.value_and_grad``'s, at one batch."""
    load_start = load()
    p = problem(model, batch)
    functions = {name: jax.jit(f) for name, f in gradient_functions(p.objective).items()}
    results = {name: f(*p.args) for name, f in functions.items()}
    timed = _interleaved(functions, p.args, config)
    times = timed["times_s"]
    ratios = run.paired_ratios(times["graph"], times["jax"])
    return {
        "model": model,
        "batch": batch,
        "graph_s": run.median(times["graph"]),
        "jax_s": run.median(times["jax"]),
        "ratio": run.median(ratios),
        "quartiles": run.quartiles(ratios),
        "rounds": config.grad_rounds,
        "largest_relative_difference": _largest_difference(results["graph"], results["jax"]),
        "load_start": load_start,
        "load_end": load(),
        **timed,
    }


FIT_GRAPH, FIT_JAX = "fungrad fit (graph)", "fungrad fit (jax)"


def measure_fit(config: Config, meter: run.CompileMeter) -> dict:
    """``fit(gradients="graph")`` and ``fit(gradients="jax")`` beside the raw-JAX floor."""
    load_start = load()
    batch, calls = config.fit_batch, config.fit_epochs_per_round + 1
    data = run.make_data(config.fit_samples, meter)
    fit_graph = run.FungradFit(FIT_GRAPH, "graph", data, batch, calls)
    fit_jax = run.FungradFit(FIT_JAX, "jax", data, batch, calls)
    floor = run.RawJax(data, batch)
    records = {}
    for v in (fit_graph, fit_jax, floor):
        seconds, compiles = meter.snapshot()
        records[v.name] = run.StepResult(v.name, batch, v.steps, first_call=v.first())
        records[v.name].compile_seconds = meter.snapshot()[0] - seconds
        records[v.name].compiles_first = meter.snapshot()[1] - compiles
    # fit (graph) beside the floor in every round, fit (jax) on the floor's other side.
    order = [fit_graph, floor, fit_jax]
    run.run_rounds(order, records, config.fit_rounds, config.fit_epochs_per_round, meter)
    rows = []
    for name, r in records.items():
        paired = run.paired_ratios(r.round_times, records[floor.name].round_times)
        rows.append(
            {
                "name": name,
                "step_s": r.step_seconds,
                "vs_floor_paired": run.median(paired),
                "quartiles": run.quartiles(paired),
                "vs_floor_of_medians": r.step_seconds / records[floor.name].step_seconds,
                "compile_s": r.compile_seconds,
                "compiles_later": sum(r.compiles_later),
                "epoch_times_s": r.rounds,
            }
        )
    steps = data.n // batch
    return {"batch": batch, "samples": data.n, "steps_per_epoch": steps, "rows": rows,
            "load_start": load_start, "load_end": load()}  # fmt: skip


def _equations(jaxpr: Jaxpr) -> int:
    """The equations of ``jaxpr`` and of every jaxpr inside its equations."""
    count = 0
    for eqn in jaxpr.eqns:
        count += 1
        for param in eqn.params.values():
            for inner in param if isinstance(param, (tuple, list)) else [param]:
                if isinstance(inner, (ClosedJaxpr, Jaxpr)):
                    count += _equations(getattr(inner, "jaxpr", inner))
    return count


def _hlo_instructions(text: str) -> int:
    """Instructions in an optimized HLO module's text (``name = type op(...)`` lines)."""
    return sum(1 for line in text.splitlines() if " = " in line and line.startswith(" "))


def _lower_and_compile(f: Callable, args: tuple) -> tuple[float, float, object]:
    start = time.perf_counter()
    lowered = jax.jit(f).lower(*args)
    traced = time.perf_counter()
    compiled = lowered.compile()
    return traced - start, time.perf_counter() - traced, compiled


def measure_compile(model: str, batch: int, config: Config) -> dict:
    """Trace + lower and XLA compile seconds of the engine's gradient and ``jax.grad``'s."""
    load_start = load()
    p = problem(model, batch)
    seconds = {name: {"trace_lower_s": [], "compile_s": []} for name in ("graph", "jax")}
    warm_up, sizes = {}, {}
    for round_index in range(config.compile_rounds + 1):  # round 0 is the warm-up
        functions = gradient_functions(p.objective)
        order = list(functions) if round_index % 2 == 0 else list(reversed(functions))
        for name in order:
            traced, compiled_s, compiled = _lower_and_compile(functions[name], p.args)
            if round_index > 0:
                seconds[name]["trace_lower_s"].append(traced)
                seconds[name]["compile_s"].append(compiled_s)
            else:  # the first in the process (the engine first): JAX's own caches are cold
                warm_up[name] = traced + compiled_s
            sizes[name] = compiled
    totals = {
        name: [a + b for a, b in zip(s["trace_lower_s"], s["compile_s"], strict=True)]
        for name, s in seconds.items()
    }
    ratios = run.paired_ratios(totals["graph"], totals["jax"])
    functions = gradient_functions(p.objective)
    return {
        "model": model,
        "batch": batch,
        "graph_s": run.median(totals["graph"]),
        "jax_s": run.median(totals["jax"]),
        "ratio": run.median(ratios),
        "quartiles": run.quartiles(ratios),
        "trace_lower_ratio": run.median(
            run.paired_ratios(seconds["graph"]["trace_lower_s"], seconds["jax"]["trace_lower_s"])
        ),
        "xla_compile_ratio": run.median(
            run.paired_ratios(seconds["graph"]["compile_s"], seconds["jax"]["compile_s"])
        ),
        "jaxpr_equations": {
            name: _equations(jax.make_jaxpr(f)(*p.args).jaxpr) for name, f in functions.items()
        },
        "hlo_instructions": {name: _hlo_instructions(c.as_text()) for name, c in sizes.items()},
        "seconds": seconds,
        "warm_up_s": warm_up,
        "load_start": load_start,
        "load_end": load(),
    }


# --------------------------------------------------------------------------- report


def targets(report: dict) -> list[dict]:
    """Each target with its measured ratio and whether it is met."""
    rows = []
    for r in report["gradients"]:
        rows.append(
            {
                "target": f"engine gradient <= {GRADIENT_TARGET}x jax.grad, {r['model']} "
                f"batch {r['batch']}",
                "measured": r["ratio"],
                "threshold": GRADIENT_TARGET,
                "met": r["ratio"] <= GRADIENT_TARGET,
            }
        )
    fit = next(row for row in report["fit"]["rows"] if row["name"] == FIT_GRAPH)
    rows.append(
        {
            "target": f"fit(gradients='graph') <= {FIT_TARGET}x raw-JAX floor, batch "
            f"{report['fit']['batch']}",
            "measured": fit["vs_floor_paired"],
            "threshold": FIT_TARGET,
            "met": fit["vs_floor_paired"] <= FIT_TARGET,
        }
    )
    for r in report["compile"]:
        rows.append(
            {
                "target": f"trace + compile <= {COMPILE_AIM}x jax.grad's (aim), {r['model']} "
                f"batch {r['batch']}",
                "measured": r["ratio"],
                "threshold": COMPILE_AIM,
                "met": r["ratio"] <= COMPILE_AIM,
            }
        )
    return rows


def _load(row: dict) -> str:
    return f"{row['load_start'][0]:.1f} / {row['load_end'][0]:.1f}"


def render(report: dict) -> str:
    """The figures as markdown tables."""
    lines = [
        "## Gradient alone: jit(graph.value_and_grad) vs jit(jax.value_and_grad)",
        "",
        "| model | batch | graph ms | jax ms | ratio (paired) | quartiles | largest rel. "
        "difference | load 1-min start / end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["gradients"]:
        low, high = r["quartiles"]
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['graph_s'] * 1e3:.3f} | {r['jax_s'] * 1e3:.3f} "
            f"| {r['ratio']:.3f}x | {low:.3f}-{high:.3f} "
            f"| {r['largest_relative_difference']:.1e} | {_load(r)} |"
        )
    fit = report["fit"]
    lines += [
        "",
        f"## fit vs the raw-JAX floor: MLP 784-512-512-10, batch {fit['batch']}, "
        f"{fit['steps_per_epoch']} steps an epoch (load {_load(fit)})",
        "",
        "| variant | ms/step | vs raw JAX (paired) | quartiles | of medians | compile s "
        "| compiles, later |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in fit["rows"]:
        low, high = r["quartiles"]
        lines.append(
            f"| {r['name']} | {r['step_s'] * 1e3:.3f} | {r['vs_floor_paired']:.3f}x "
            f"| {low:.3f}-{high:.3f} | {r['vs_floor_of_medians']:.3f}x | {r['compile_s']:.2f} "
            f"| {r['compiles_later']} |"
        )
    lines += [
        "",
        "## Trace + compile: jax.jit(f).lower(*args).compile()",
        "",
        "| model | batch | graph s | jax s | ratio (paired) | trace+lower ratio "
        "| XLA compile ratio | jaxpr eqns graph / jax | HLO instrs graph / jax | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["compile"]:
        eqns, hlo = r["jaxpr_equations"], r["hlo_instructions"]
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['graph_s']:.3f} | {r['jax_s']:.3f} "
            f"| {r['ratio']:.3f}x | {r['trace_lower_ratio']:.3f}x "
            f"| {r['xla_compile_ratio']:.3f}x | {eqns['graph']} / {eqns['jax']} "
            f"| {hlo['graph']} / {hlo['jax']} | {_load(r)} |"
        )
    lines += ["", "## Targets", "", "| target | measured | status |", "|---|---:|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['target']} | {t['measured']:.3f} | {'met' if t['met'] else 'MISSED'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny batches, one round (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    meter = run.CompileMeter()
    started, load_start = time.perf_counter(), load()
    gradients = []
    for model, batches in (("mlp", config.mlp_batches), ("cnn", config.cnn_batches)):
        for batch in batches:
            run.progress(f"gradient alone: {model}, batch {batch}")
            gradients.append(measure_gradient(model, batch, config))
    run.progress(f"fit vs the floor, batch {config.fit_batch}")
    fit = measure_fit(config, meter)
    compiles = []
    for model, batches in (("mlp", config.mlp_batches), ("cnn", config.cnn_batches)):
        run.progress(f"trace + compile: {model}, batch {batches[0]}")
        compiles.append(measure_compile(model, batches[0], config))
    command = ["python", "benchmarks/graph.py", *(argv if argv is not None else sys.argv[1:])]
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command),
        "mode": "quick" if args.quick else "full",
        "config": asdict(config),
        "machine": run.machine(),
        "versions": run.versions(),
        "load_average": {"start": load_start, "end": load()},
        "gradients": gradients,
        "fit": fit,
        "compile": compiles,
    }
    report["targets"] = targets(report)
    report["seconds"] = time.perf_counter() - started
    print(render(report))
    run.progress(f"done in {report['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark fungrad's training step against a raw-JAX floor and peer frameworks.

One process, variants interleaved round by round, medians over repeats after warm-up. The task
is the same for every variant: an MLP 784-512-512-10 (relu), softmax cross-entropy, float32,
momentum SGD (learning rate 0.01, beta 0.9), one shuffled pass over synthetic data per epoch.

Timing: every variant is timed per epoch in the steady state, compile excluded, each epoch
ending in a host sync; per-step time is the epoch time over the steps per epoch.

- ``fungrad.fit`` caches its compiled epoch on the (static) program and optimizer, so each
  fit variant makes its optimizer once and reuses it: its first call compiles, later calls do
  not. Its ``callback`` runs on the host after each epoch's metrics have been read back, so
  the gap between two callbacks is one steady epoch exactly as ``fit`` runs it (dispatch,
  epoch, read-back). The time from the first call to its first callback is the first-call
  latency; the compiles of the second call are counted too (they should be 0).
- The raw-JAX floor is a jitted ``lax.scan`` epoch (permute with ``jax.random``, gather the batch,
  ``jax.value_and_grad``, optax update) written here; each epoch is blocked on.
- Peers run a Python loop over steps of a jitted step (equinox ``eqx.filter_jit``, flax
  ``nnx.jit``) or eager PyTorch; each epoch is blocked on.
- Rounds: in every round each variant runs its epochs in turn, in a fixed order that is run
  forwards in even rounds and backwards in odd ones, so load drifts fall on all variants
  alike and fit sits beside the floor in every round. A ratio between two variants is the
  median over rounds of the per-round ratio (the two measured in the same round, a few
  seconds apart at most); the ratio of the medians is reported beside it.
- ``fungrad.fit_restarts`` is one compiled call with no per-epoch hook: its time per step is the
  call's wall time less the compile seconds reported by ``jax.monitoring`` (none after its
  warm-up call), over all its steps. The raw-JAX floor vmapped over R runs is timed beside it.
- The machine limit is sampled between the rounds, under the same load as the variants.

Usage::

    python benchmarks/run.py                 # full run (about 6 minutes on 2 CPU cores)
    python benchmarks/run.py --quick         # smoke run, under a minute
    python benchmarks/run.py --json out.json # also write every figure as JSON
    python benchmarks/run.py --rounds 4      # fewer rounds (a rough look, not the record)
    python benchmarks/run.py --batches 32,1024,8192 --restart-runs 1,16,64 \\
        --matmul-sizes 1024,2048,4096,8192   # the GPU record (benchmarks/device.sh)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fungrad
from fungrad import mlp

SIZES = (784, 512, 512, 10)
LEARNING_RATE = 0.01
BETA = 0.9
LOSS = "softmax_cross_entropy"
# The batch sizes and restart count the targets of issue 5 are stated at.
SMALL_BATCH, LARGE_BATCH, MOST_RUNS = 32, 1024, 16


@dataclass(frozen=True)
class Config:
    batches: tuple[int, ...]
    min_samples: int  # each batch size trains on max(min_samples, min_steps * batch) samples
    min_steps: int
    rounds: tuple[int, ...]  # per batch size: rounds of interleaved variants, after warm-up
    epochs_per_round: int  # a fit call runs one more (its first epoch is before any callback)
    matmul_sizes: tuple[int, ...]
    grad_rounds: int
    grad_seconds: float  # about how long one timed loop of gradient calls runs
    restart_runs: tuple[int, ...]
    restart_samples: int
    restart_epochs: int
    restart_rounds: int
    restart_single_epochs: int  # steady epochs a round of the single (unvmapped) runs

    def samples(self, batch: int) -> int:
        return max(self.min_samples, self.min_steps * batch)


FULL = Config(
    batches=(SMALL_BATCH, 128, LARGE_BATCH),
    min_samples=4096,
    min_steps=16,
    rounds=(20, 20, 10),
    epochs_per_round=2,
    matmul_sizes=(1024, 2048),
    grad_rounds=15,
    grad_seconds=0.1,
    restart_runs=(1, 4, MOST_RUNS),
    restart_samples=1024,
    restart_epochs=3,
    restart_rounds=6,
    restart_single_epochs=5,
)
QUICK = Config(
    batches=(SMALL_BATCH,),
    min_samples=256,
    min_steps=1,
    rounds=(1,),
    epochs_per_round=1,
    matmul_sizes=(512,),
    grad_rounds=1,
    grad_seconds=0.01,
    restart_runs=(2,),
    restart_samples=64,
    restart_epochs=2,
    restart_rounds=1,
    restart_single_epochs=1,
)


# --------------------------------------------------------------------------- bookkeeping


def step_flops(batch: int, sizes=SIZES) -> int:
    """Matmul FLOPs of one training step: forward, weight gradients, input gradients.

    Forward ``2 B n_in n_out`` per layer; backward ``2 B n_in n_out`` for ``dW`` of every layer
    and for ``dX`` of every layer but the first (nothing needs the input's gradient).
    """
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    forward = sum(2 * batch * n_in * n_out for n_in, n_out in layers)
    weights = forward
    inputs = sum(2 * batch * n_in * n_out for n_in, n_out in layers[1:])
    return forward + weights + inputs


class CompileMeter:
    """Counts compilations and sums their seconds, from ``jax.monitoring`` events."""

    _EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self):
        self.seconds = 0.0
        self.compiles = 0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, name, duration, **_):
        if name in self._EVENTS:
            self.seconds += duration
        if name == "/jax/core/compile/backend_compile_duration":
            self.compiles += 1

    def snapshot(self) -> tuple[float, int]:
        return self.seconds, self.compiles


_START = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _START:6.1f} s] {message}", file=sys.stderr, flush=True)


def median(values) -> float:
    return float(statistics.median(values)) if values else float("nan")


def versions() -> dict[str, str]:
    found = {}
    for name in ("jax", "jaxlib", "optax", "equinox", "flax", "torch", "numpy", "fungrad"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine() -> dict[str, str | int]:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax_backend": jax.default_backend(),
        "jax_devices": ", ".join(str(d) for d in jax.devices()),
    }


def peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / 2**20


# --------------------------------------------------------------------------- machine limit


class MatmulProbe:
    """float32 ``a @ b`` at large square sizes through JAX; sampled once per round.

    The machine limit is the best median rate over the sizes: on XLA:CPU the rate is not
    monotonic in the size (it can drop by half from 1024 to 2048 once the operands leave the
    cache), and the limit should be what the machine can do. Sampling between the variants
    keeps the limit and the training steps under the same load, which on a shared machine
    drifts.
    """

    def __init__(self, sizes: tuple[int, ...]):
        self.sizes = sizes
        self._operands = {}
        self._product = jax.jit(lambda a, b: a @ b)
        for size in sizes:
            ka, kb = jax.random.split(jax.random.key(size))
            a = jax.random.normal(ka, (size, size), jnp.float32)
            b = jax.random.normal(kb, (size, size), jnp.float32)
            self._product(a, b).block_until_ready()
            self._operands[size] = (a, b)
        self.times: dict[int, list[float]] = {size: [] for size in sizes}

    def sample(self) -> None:
        for size, (a, b) in self._operands.items():
            start = time.perf_counter()
            self._product(a, b).block_until_ready()
            self.times[size].append(time.perf_counter() - start)

    def rates(self) -> dict[int, float]:
        return {size: 2 * size**3 / median(times) / 1e9 for size, times in self.times.items()}

    @property
    def gflops(self) -> float:
        return max(self.rates().values())


# --------------------------------------------------------------------------- variants

# A variant trains on (x, y) with one batch size and yields per-epoch wall times:
# ``first()`` returns the first-call latency (seconds: trace, compile, first epoch) and
# ``epochs(k)`` returns k steady-state epoch times.


class FungradFit:
    """``fungrad.fit`` timed between its epoch callbacks.

    The optimizer is made once and passed to every call: ``fit`` caches its compiled epoch on
    the program and the optimizer object, so only the first call compiles. Every call runs the
    same number of epochs (the epoch cap is part of the cached program).
    """

    def __init__(self, name, gradients, data, batch, epochs_per_call):
        self.name, self.gradients, self.batch = name, gradients, batch
        self.x, self.y = data.x, data.y
        self.params = mlp.init(jax.random.key(1), SIZES)
        self.optimizer = fungrad.optim.momentum(LEARNING_RATE, BETA)
        self.steps = data.n // batch
        self.epochs_per_call = epochs_per_call
        # Per call: seconds from the call to its first callback (setup and the first epoch,
        # with the compile on the first call).
        self.first_epoch_latencies: list[float] = []

    def _fit(self):
        stamps = []
        start = time.perf_counter()
        fungrad.fit(
            self.params,
            self.x,
            self.y,
            loss=LOSS,
            optimizer=self.optimizer,
            epochs=self.epochs_per_call,
            key=jax.random.key(2),
            batch_size=self.batch,
            gradients=self.gradients,
            callback=lambda epoch, metrics: stamps.append(time.perf_counter()),
        )
        self.first_epoch_latencies.append(stamps[0] - start)
        return [float(t) for t in np.diff(stamps)]

    def first(self):
        self._fit()  # compiles; its steady epochs are warm-up and are not kept
        return self.first_epoch_latencies[0]

    def epochs(self, k):
        if k != self.epochs_per_call - 1:
            raise ValueError(f"{self.name}: each call yields {self.epochs_per_call - 1} epochs")
        return self._fit()


def _objective(params, x, y):
    a = x
    for layer in params[:-1]:
        a = jax.nn.relu(a @ layer["w"] + layer["b"])
    logits = a @ params[-1]["w"] + params[-1]["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _raw_epoch(tx, n, steps, batch):
    """The floor's epoch: permute, gather each batch, ``value_and_grad``, optax update."""

    def epoch(state, key, epoch_index, x, y):
        order = jax.random.permutation(jax.random.fold_in(key, epoch_index), n)
        indices = order[: steps * batch].reshape(steps, batch)

        def step(state, batch_indices):
            params, opt_state = state
            loss, grads = jax.value_and_grad(_objective)(params, x[batch_indices], y[batch_indices])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.scan(step, state, indices)

    return epoch


class RawJax:
    """The floor: the same epoch as fit, hand-written as one jitted ``lax.scan``.

    With ``runs``, R independent runs (their own initial params, optimizer state and shuffling
    key) vmapped in one jitted epoch, the floor of ``fit_restarts``.
    """

    name = "raw JAX (scan + optax)"

    def __init__(self, data, batch, runs=None):
        self.x, self.y, self.batch = data.x, data.y, batch
        self.steps = data.n // batch
        tx = optax.sgd(LEARNING_RATE, momentum=BETA)
        epoch = _raw_epoch(tx, data.n, self.steps, batch)
        if runs is None:
            params = mlp.init(jax.random.key(1), SIZES)
            self.state = (params, tx.init(params))
            self.key = jax.random.key(2)
            self._epoch = jax.jit(epoch)
        else:
            keys = jax.random.split(jax.random.key(1), runs)
            params = jax.vmap(lambda k: mlp.init(k, SIZES))(keys)
            self.state = (params, jax.vmap(tx.init)(params))
            self.key = jax.random.split(jax.random.key(2), runs)
            self._epoch = jax.jit(jax.vmap(epoch, in_axes=(0, 0, None, None, None)))
        self.epoch_index = 0

    def _run(self):
        start = time.perf_counter()
        self.state, losses = self._epoch(self.state, self.key, self.epoch_index, self.x, self.y)
        losses.block_until_ready()
        self.epoch_index += 1
        return time.perf_counter() - start

    def first(self):
        return self._run()

    def epochs(self, k):
        return [self._run() for _ in range(k)]


class PythonLoop:
    """A peer's training loop: a Python loop over the steps of one epoch, blocked at the end."""

    def __init__(self, name, data, batch, step: Callable, block: Callable, permute: Callable):
        self.name, self.batch, self.steps = name, batch, data.n // batch
        self._step, self._block, self._permute = step, block, permute
        self.epoch_index = 0

    def _run(self):
        start = time.perf_counter()
        indices = self._permute(self.epoch_index, self.steps, self.batch)
        loss = None
        for i in range(self.steps):
            loss = self._step(indices[i])
        self._block(loss)
        self.epoch_index += 1
        return time.perf_counter() - start

    def first(self):
        return self._run()

    def epochs(self, k):
        return [self._run() for _ in range(k)]


def _jax_permutation(n):
    key = jax.random.key(2)

    def permute(epoch_index, steps, batch):
        order = jax.random.permutation(jax.random.fold_in(key, epoch_index), n)
        return np.asarray(order[: steps * batch]).reshape(steps, batch)

    return permute


def equinox_variant(data, batch):
    import equinox as eqx

    model = eqx.nn.MLP(
        SIZES[0], SIZES[-1], SIZES[1], len(SIZES) - 2, activation=jax.nn.relu, key=jax.random.key(1)
    )
    tx = optax.sgd(LEARNING_RATE, momentum=BETA)
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def train_step(model, opt_state, x, y, indices):
        def loss_fn(model):
            logits = jax.vmap(model)(x[indices])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y[indices]).mean()

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    state = [model, opt_state]

    def step(indices):
        state[0], state[1], loss = train_step(state[0], state[1], data.x, data.y, indices)
        return loss

    return PythonLoop(
        "optax + equinox (filter_jit)",
        data,
        batch,
        step,
        jax.block_until_ready,
        _jax_permutation(data.n),
    )


def flax_variants(data, batch):
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List(
                [nnx.Linear(a, b, rngs=rngs) for a, b in zip(SIZES[:-1], SIZES[1:], strict=True)]
            )

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = nnx.relu(layer(x))
            return self.layers[-1](x)

    @nnx.jit
    def train_step(model, optimizer, x, y, indices):
        def loss_fn(model):
            logits = model(x[indices])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y[indices]).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    variants = []
    for label, cached in (("nnx.jit", False), ("nnx.jit + cached_partial", True)):
        model = MLP(nnx.Rngs(1))
        optimizer = nnx.Optimizer(model, optax.sgd(LEARNING_RATE, momentum=BETA), wrt=nnx.Param)
        if cached:
            cached_step = nnx.cached_partial(train_step, model, optimizer)

            def step(indices, cached_step=cached_step):
                return cached_step(data.x, data.y, indices)
        else:

            def step(indices, model=model, optimizer=optimizer):
                return train_step(model, optimizer, data.x, data.y, indices)

        variants.append(
            PythonLoop(
                f"optax + flax ({label})",
                data,
                batch,
                step,
                jax.block_until_ready,
                _jax_permutation(data.n),
            )
        )
    return variants


@functools.cache
def _torch_default_threads() -> int:
    import torch

    return torch.get_num_threads()


def torch_variants(data, batch):
    default = _torch_default_threads()
    # On a shared machine PyTorch's default thread pool can stall when another process holds a
    # core; one thread is then much faster, so both run and the faster one is the peer's figure.
    return [torch_variant(data, batch, threads) for threads in sorted({default, 1}, reverse=True)]


def torch_variant(data, batch, threads):
    import torch

    torch.manual_seed(1)
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=BETA)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.from_numpy(np.array(data.x))
    y = torch.from_numpy(np.array(data.y, dtype=np.int64))
    generator = torch.Generator().manual_seed(2)

    def permute(epoch_index, steps, batch):
        torch.set_num_threads(threads)
        return torch.randperm(data.n, generator=generator)[: steps * batch].view(steps, batch)

    def step(indices):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[indices]), y[indices])
        loss.backward()
        optimizer.step()
        return loss

    return PythonLoop(
        f"PyTorch eager (CPU, {threads} thread{'s' if threads > 1 else ''})",
        data,
        batch,
        step,
        lambda loss: loss.item(),
        permute,
    )


PEERS = (
    ("equinox", lambda data, batch: [equinox_variant(data, batch)]),
    ("flax", flax_variants),
    ("torch", torch_variants),
)


@dataclass
class Data:
    x: jax.Array
    y: jax.Array
    n: int
    meter: CompileMeter


def make_data(n: int, meter: CompileMeter) -> Data:
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, SIZES[0]), jnp.float32)
    y = jax.random.randint(ky, (n,), 0, SIZES[-1], jnp.int32)
    return Data(x, y, n, meter)


# --------------------------------------------------------------------------- measurements


@dataclass
class StepResult:
    name: str
    batch: int
    steps_per_epoch: int
    rounds: list[list[float]] = field(default_factory=list)  # epoch times, one list a round
    first_call: float = float("nan")
    compile_seconds: float = float("nan")  # of the first call
    compiles_first: int = 0
    compiles_later: list[int] = field(default_factory=list)  # one count a round
    second_call: float = float("nan")  # fit only: call to first callback, compile cached

    @property
    def epoch_times(self) -> list[float]:
        return [t for times in self.rounds for t in times]

    @property
    def round_times(self) -> list[float]:
        return [median(times) for times in self.rounds]

    @property
    def step_seconds(self) -> float:
        return median(self.epoch_times) / self.steps_per_epoch

    @property
    def best_step_seconds(self) -> float:
        return min(self.epoch_times) / self.steps_per_epoch


def paired_ratios(a: list[float], b: list[float]) -> list[float]:
    """Per-round ratios ``a[r] / b[r]`` of two variants timed in the same round."""
    return [x / y for x, y in zip(a, b, strict=True)]


def quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return float(low), float(high)


def installed_peers(skipped: list[str]) -> list[tuple[str, Callable]]:
    found = []
    for module, build in PEERS:
        try:
            __import__(module)
        except ImportError as error:
            skipped.append(f"{module}: not installed ({error}); its rows are skipped")
            continue
        found.append((module, build))
    return found


FIT_BACKPROP, FIT_AUTODIFF = "fungrad fit (backprop)", "fungrad fit (autodiff)"


def run_rounds(variants, records, rounds, epochs_per_round, meter, probe=None, label=""):
    """Interleave: each round runs every variant in turn, forwards in even rounds and
    backwards in odd ones; counts the compiles each variant triggers in each round."""
    for round_index in range(rounds):
        start = time.perf_counter()
        order = variants if round_index % 2 == 0 else variants[::-1]
        for variant in order:
            _, compiles_before = meter.snapshot()
            times = variant.epochs(epochs_per_round)
            record = records[variant.name]
            record.rounds.append(times)
            record.compiles_later.append(meter.snapshot()[1] - compiles_before)
        if probe is not None:
            probe.sample()
        progress(f"  {label}round {round_index + 1}/{rounds}: {time.perf_counter() - start:.1f} s")


def measure_steps(
    config: Config, meter: CompileMeter, probe: MatmulProbe, skipped: list[str]
) -> list[StepResult]:
    peers = installed_peers(skipped)
    results = []
    for batch, rounds in zip(config.batches, config.rounds, strict=True):
        data = make_data(config.samples(batch), meter)
        calls = config.epochs_per_round + 1
        fit_backprop = FungradFit(FIT_BACKPROP, "backprop", data, batch, calls)
        fit_autodiff = FungradFit(FIT_AUTODIFF, "autodiff", data, batch, calls)
        floor = RawJax(data, batch)
        peer_variants = []
        for _, build in peers:
            peer_variants.extend(build(data, batch))
        # Table order, and the order of a round: the peers, then fit (backprop) beside the
        # floor, then fit (autodiff) on the floor's other side. Forwards and backwards in
        # turn, fit (backprop) and the floor are neighbours in every round.
        variants = [fit_backprop, fit_autodiff, floor, *peer_variants]
        round_order = [*peer_variants[::-1], fit_backprop, floor, fit_autodiff]
        records = {}
        for v in variants:
            seconds_before, compiles_before = meter.snapshot()
            record = StepResult(v.name, batch, v.steps, first_call=v.first())
            seconds, compiles = meter.snapshot()
            record.compile_seconds = seconds - seconds_before
            record.compiles_first = compiles - compiles_before
            records[v.name] = record
        run_rounds(
            round_order,
            records,
            rounds,
            config.epochs_per_round,
            meter,
            probe,
            label=f"batch {batch}, ",
        )
        for variant in (fit_backprop, fit_autodiff):
            if len(variant.first_epoch_latencies) > 1:
                records[variant.name].second_call = variant.first_epoch_latencies[1]
        results.extend(records.values())
        progress(f"  batch {batch}: {data.n} samples, {data.n // batch} steps per epoch, done")
    return results


def measure_gradients(config: Config) -> list[dict]:
    """The hand-written backprop gradient alone vs ``jax.value_and_grad``, both jitted."""
    loss = fungrad.get_loss(LOSS)

    def objective(params, x, y):
        return jnp.mean(loss.fn(mlp.apply(params, x), y))

    backprop = jax.jit(
        functools.partial(fungrad.backprop.value_and_grad, activation="relu", loss=LOSS)
    )
    autodiff = jax.jit(jax.value_and_grad(objective))
    params = mlp.init(jax.random.key(1), SIZES)
    rows = []
    for batch in config.batches:
        kx, ky = jax.random.split(jax.random.key(batch))
        x = jax.random.normal(kx, (batch, SIZES[0]), jnp.float32)
        y = jax.random.randint(ky, (batch,), 0, SIZES[-1], jnp.int32)
        functions = {"backprop": backprop, "jax.value_and_grad": autodiff}
        for f in functions.values():
            jax.block_until_ready(f(params, x, y))
        start = time.perf_counter()
        jax.block_until_ready(autodiff(params, x, y))
        calls = max(1, int(config.grad_seconds / max(time.perf_counter() - start, 1e-6)))
        times = {name: [] for name in functions}
        for round_index in range(config.grad_rounds):
            order = list(functions) if round_index % 2 == 0 else list(reversed(functions))
            for name in order:
                f = functions[name]
                start = time.perf_counter()
                for _ in range(calls):
                    out = f(params, x, y)
                jax.block_until_ready(out)
                times[name].append((time.perf_counter() - start) / calls)
        ratio = median(
            [b / a for b, a in zip(times["backprop"], times["jax.value_and_grad"], strict=True)]
        )
        rows.append(
            {
                "batch": batch,
                "backprop_s": median(times["backprop"]),
                "autodiff_s": median(times["jax.value_and_grad"]),
                "ratio": ratio,
            }
        )
    return rows


class Restarts:
    """``fungrad.fit_restarts`` over R runs, timed per call (one call: ``epochs`` epochs)."""

    def __init__(self, data, batch, runs, epochs, meter):
        self.name = f"fit_restarts R={runs}"
        self.data, self.batch, self.runs, self.meter = data, batch, runs, meter
        self.steps, self.calls = data.n // batch, epochs
        keys = jax.random.split(jax.random.key(1), runs)
        self.params = jax.vmap(lambda k: mlp.init(k, SIZES))(keys)
        self.optimizer = fungrad.optim.momentum(LEARNING_RATE, BETA)  # once: cached compile
        self.walls: list[float] = []

    def _call(self):
        seconds_before, _ = self.meter.snapshot()
        start = time.perf_counter()
        result = fungrad.fit_restarts(
            self.params,
            self.data.x,
            self.data.y,
            loss=LOSS,
            optimizer=self.optimizer,
            epochs=self.calls,
            key=jax.random.key(2),
            batch_size=self.batch,
        )
        jax.block_until_ready(result.params)
        wall = time.perf_counter() - start
        self.walls.append(wall)
        return wall - (self.meter.snapshot()[0] - seconds_before)

    def first(self):
        return self._call()

    def epochs(self, k):
        # One call runs all its epochs; its per-epoch time is the call's time over them.
        return [self._call() / self.calls]


def measure_restarts(config: Config, meter: CompileMeter) -> list[dict]:
    """Per-step time of R vmapped runs (``fit_restarts``) against one ``fit`` run, batch 32,
    and the same for the raw-JAX floor (R runs vmapped in one jitted epoch against one run).

    ``fit_restarts`` is one compiled call with no per-epoch hook, so its time per step is the
    call's wall time less the compile seconds that ``jax.monitoring`` reported (none after the
    warm-up call), over the steps of all its epochs; what is left of its setup counts against
    fungrad. The single ``fit`` run is timed between its epoch callbacks, as in the
    training-step table. Every variant is warmed up (compiled) first, then all run in
    interleaved rounds; each cost is the median over rounds of the per-round ratio.
    """
    batch = config.batches[0]
    data = make_data(config.restart_samples, meter)
    steps = data.n // batch
    epochs = config.restart_epochs
    # The single runs are short (32 steps an epoch), so each round takes more of their epochs.
    single_epochs = config.restart_single_epochs
    single = FungradFit("fit", "backprop", data, batch, single_epochs + 1)
    floor = RawJax(data, batch)
    restarts = {runs: Restarts(data, batch, runs, epochs, meter) for runs in config.restart_runs}
    floors = {runs: RawJax(data, batch, runs) for runs in config.restart_runs}
    for name, variant in zip(("floor R=", "fit_restarts R="), (floors, restarts), strict=True):
        for runs, v in variant.items():
            v.name = f"{name}{runs}"
    variants = [single, floor]
    for runs in config.restart_runs:
        variants += [restarts[runs], floors[runs]]
    records = {}
    for v in variants:
        seconds_before, compiles_before = meter.snapshot()
        record = StepResult(v.name, batch, steps, first_call=v.first())
        seconds, compiles = meter.snapshot()
        record.compile_seconds = seconds - seconds_before
        record.compiles_first = compiles - compiles_before
        records[v.name] = record
    # A round: one fit_restarts call per R (all its epochs, one sample), epochs - 1 epochs of
    # each vmapped floor, and single_epochs epochs of the single fit run and the single floor.
    for round_index in range(config.restart_rounds):
        order = variants if round_index % 2 == 0 else variants[::-1]
        start = time.perf_counter()
        for v in order:
            _, compiles_before = meter.snapshot()
            if isinstance(v, Restarts):
                times = v.epochs(1)
            elif v is single or v is floor:
                times = v.epochs(single_epochs)
            else:
                times = v.epochs(epochs - 1)
            records[v.name].rounds.append(times)
            records[v.name].compiles_later.append(meter.snapshot()[1] - compiles_before)
        progress(
            f"  restarts round {round_index + 1}/{config.restart_rounds}: "
            f"{time.perf_counter() - start:.1f} s"
        )
    one_fit = records[single.name]
    one_floor = records[floor.name]
    rows = []
    for runs in config.restart_runs:
        vmapped = records[restarts[runs].name]
        vmapped_floor = records[floors[runs].name]
        cost = paired_ratios(vmapped.round_times, one_fit.round_times)
        floor_cost = paired_ratios(vmapped_floor.round_times, one_floor.round_times)
        vs_floor = paired_ratios(vmapped.round_times, vmapped_floor.round_times)
        rows.append(
            {
                "runs": runs,
                "batch": batch,
                "samples": data.n,
                "epochs": epochs,
                "vmapped_step_s": vmapped.step_seconds,
                "one_fit_step_s": one_fit.step_seconds,
                "sequential_step_s": runs * one_fit.step_seconds,
                "cost_vs_one_run": median(cost),
                "cost_vs_one_run_quartiles": quartiles(cost),
                "cost_vs_one_run_of_medians": vmapped.step_seconds / one_fit.step_seconds,
                "speedup_vs_sequential": runs / median(cost),
                "floor_vmapped_step_s": vmapped_floor.step_seconds,
                "floor_one_step_s": one_floor.step_seconds,
                "floor_cost_vs_one_run": median(floor_cost),
                "floor_cost_vs_one_run_quartiles": quartiles(floor_cost),
                "vmapped_vs_vmapped_floor": median(vs_floor),
                "call_wall_s": median(restarts[runs].walls[1:]),
                "first_call_s": restarts[runs].walls[0],
                "first_call_compiles": vmapped.compiles_first,
                "later_call_compiles": sum(vmapped.compiles_later),
                "rounds": len(vmapped.rounds),
                "fit_restarts_call_s": vmapped.epoch_times,
                "fit_epoch_s": one_fit.round_times,
                "floor_vmapped_epoch_s": vmapped_floor.round_times,
                "floor_one_epoch_s": one_floor.round_times,
            }
        )
    return rows


def device_memory() -> dict:
    stats = jax.devices()[0].memory_stats()
    if stats is None:
        return {"reported": False, "note": f"{jax.devices()[0]}: memory_stats() is None"}
    keep = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
    return {"reported": True, **{k: stats[k] for k in keep if k in stats}}


# --------------------------------------------------------------------------- report


def step_rows(steps: list[StepResult]) -> list[dict]:
    """The training-step figures, with each variant's paired ratio to the floor."""
    floors = {r.batch: r for r in steps if r.name == RawJax.name}
    rows = []
    for r in steps:
        seconds = r.step_seconds
        floor = floors[r.batch]
        paired = paired_ratios(r.round_times, floor.round_times)
        rows.append(
            {
                "name": r.name,
                "batch": r.batch,
                "steps_per_epoch": r.steps_per_epoch,
                "step_s": seconds,
                "best_step_s": r.best_step_seconds,
                "samples_per_s": r.batch / seconds,
                "gflops": step_flops(r.batch) / seconds / 1e9,
                "flops_per_step": step_flops(r.batch),
                "vs_floor_paired": median(paired),
                "vs_floor_paired_quartiles": quartiles(paired),
                "vs_floor_of_medians": seconds / floor.step_seconds,
                "rounds": len(r.rounds),
                "epoch_times_s": r.rounds,
                "first_call_s": r.first_call,
                "compile_s": r.compile_seconds,
                "compiles_first_call": r.compiles_first,
                "compiles_second_call": r.compiles_later[0] if r.compiles_later else None,
                "compiles_later": sum(r.compiles_later),
                "second_call_s": r.second_call,
            }
        )
    return rows


def targets(steps: list[StepResult], grads: list[dict], restarts: list[dict], peak: float):
    """Each target of issue 5 with its measured ratio; ``n/a`` where this mode did not measure it.

    A ratio between two variants is the median over rounds of their per-round ratio; the
    detail gives its quartiles over the rounds and the ratio of the two medians.
    """
    by = {(r.name, r.batch): r for r in steps}
    rows = []

    def add(description, threshold, measured=None, met=None, detail="not measured in this mode"):
        status = "n/a" if measured is None else ("met" if met else "MISSED")
        rows.append(
            {
                "target": description,
                "measured": measured,
                "threshold": threshold,
                "status": status,
                "detail": detail,
            }
        )

    def spread(ratios):
        low, high = quartiles(ratios)
        return f"quartiles over {len(ratios)} rounds {low:.3f}-{high:.3f}"

    for batch, limit in ((SMALL_BATCH, 1.10), (LARGE_BATCH, 1.05)):
        description = f"fit per step <= {limit:.2f}x raw-JAX floor, batch {batch}"
        f, floor = by.get((FIT_BACKPROP, batch)), by.get((RawJax.name, batch))
        if f is None or floor is None:
            add(description, limit)
            continue
        ratios = paired_ratios(f.round_times, floor.round_times)
        ratio = median(ratios)
        detail = (
            f"paired; {spread(ratios)}; ratio of medians "
            f"{f.step_seconds * 1e3:.3f} / {floor.step_seconds * 1e3:.3f} ms = "
            f"{f.step_seconds / floor.step_seconds:.3f}"
        )
        add(description, limit, ratio, ratio <= limit, detail)
    f = by.get((FIT_BACKPROP, SMALL_BATCH))
    for prefix, factor in (("optax + equinox", 1.5), ("optax + flax", 1.5), ("PyTorch eager", 2.0)):
        description = f"fit >= {factor}x faster than {prefix}, batch {SMALL_BATCH}"
        peers = [r for (name, b), r in by.items() if b == SMALL_BATCH and name.startswith(prefix)]
        if f is None or not peers:
            add(description, factor, detail="skipped: not installed" if f else "not measured")
            continue
        # The peer's figure is its fastest variant: the one with the smallest paired speedup.
        speedups = {p.name: paired_ratios(p.round_times, f.round_times) for p in peers}
        fastest = min(peers, key=lambda p: median(speedups[p.name]))
        ratios = speedups[fastest.name]
        speedup = median(ratios)
        detail = (
            f"fastest {fastest.name}, paired; {spread(ratios)}; ratio of medians "
            f"{fastest.step_seconds * 1e3:.3f} / {f.step_seconds * 1e3:.3f} ms = "
            f"{fastest.step_seconds / f.step_seconds:.3f}"
        )
        add(description, factor, speedup, speedup >= factor, detail)
    description = "backprop gradient <= 1.05x jax.value_and_grad (worst batch)"
    worst = max(grads, key=lambda r: r["ratio"])
    detail = "paired; " + ", ".join(f"batch {r['batch']}: {r['ratio']:.3f}x" for r in grads)
    add(description, 1.05, worst["ratio"], worst["ratio"] <= 1.05, detail)
    description = f"fit at batch {LARGE_BATCH} >= 85% of the measured matmul rate"
    f = by.get((FIT_BACKPROP, LARGE_BATCH))
    if f is None:
        add(description, 0.85)
    else:
        rate = step_flops(LARGE_BATCH) / f.step_seconds / 1e9
        detail = f"median step: {rate:.1f} of {peak:.1f} GFLOP/s"
        add(description, 0.85, rate / peak, rate / peak >= 0.85, detail)
    description = f"R={MOST_RUNS} vmapped restarts <= 10x one run, batch {SMALL_BATCH}"
    row = next((r for r in restarts if r["runs"] == MOST_RUNS), None)
    if row is None:
        add(description, 10.0)
    else:
        low, high = row["cost_vs_one_run_quartiles"]
        detail = (
            f"paired; quartiles over {row['rounds']} rounds {low:.2f}-{high:.2f}; medians "
            f"{row['vmapped_step_s'] * 1e3:.3f} ms vs {row['one_fit_step_s'] * 1e3:.3f} ms per "
            f"step; raw-JAX floor vmapped: {row['floor_cost_vs_one_run']:.2f}x its one run"
        )
        cost = row["cost_vs_one_run"]
        add(description, 10.0, cost, cost <= 10, detail)
    return rows


def _seconds(value, digits=3) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def render(report: dict) -> str:
    peak = report["matmul"]["gflops"]
    by_size = ", ".join(
        f"{size}x{size}: {rate:.1f}" for size, rate in report["matmul"]["gflops_by_size"].items()
    )
    samples = len(next(iter(report["matmul"]["times_s"].values())))
    rounds = ", ".join(
        f"{r} at batch {b}"
        for b, r in zip(report["config"]["batches"], report["config"]["rounds"], strict=True)
    )
    epochs = report["config"]["epochs_per_round"]
    lines = [
        "## Training step: MLP 784-512-512-10, softmax cross-entropy, float32, momentum SGD",
        "",
        f"Machine limit: the best float32 square matmul rate through JAX, **{peak:.1f} GFLOP/s** "
        f"(GFLOP/s by size, median of {samples} samples taken between the rounds: {by_size}).",
        "",
        f"ms/step is the median over rounds x {epochs} epochs (rounds: {rounds}); 'vs raw JAX' "
        "is the "
        "median over rounds of the per-round ratio to the floor (quartiles beside it), and "
        "'of medians' the ratio of the two medians.",
        "",
        "| batch | variant | ms/step | best ms/step | samples/s | GFLOP/s | % of matmul "
        "| vs raw JAX | quartiles | of medians |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["steps"]:
        low, high = r["vs_floor_paired_quartiles"]
        lines.append(
            f"| {r['batch']} | {r['name']} | {r['step_s'] * 1e3:.3f} "
            f"| {r['best_step_s'] * 1e3:.3f} | {r['samples_per_s']:,.0f} "
            f"| {r['gflops']:.1f} | {100 * r['gflops'] / peak:.0f}% "
            f"| {r['vs_floor_paired']:.3f}x | {low:.3f}-{high:.3f} "
            f"| {r['vs_floor_of_medians']:.3f}x |"
        )
    lines += [
        "",
        "## Gradient alone (jitted, one batch, same objective)",
        "",
        "| batch | backprop ms | jax.value_and_grad ms | ratio (paired) |",
        "|---:|---:|---:|---:|",
    ]
    for r in report["gradients"]:
        lines.append(
            f"| {r['batch']} | {r['backprop_s'] * 1e3:.3f} | {r['autodiff_s'] * 1e3:.3f} "
            f"| {r['ratio']:.3f}x |"
        )
    lines += [
        "",
        "## First-call latency (trace + compile + first epoch) vs a steady epoch",
        "",
        "For fit, a call is one `fit(..., epochs=" + str(epochs + 1) + ")` with the variant's "
        "one optimizer object; 'second call s' is the time from its second call to its first "
        "callback (setup and one epoch). For the others the first call is the warm-up epoch and "
        "a later call is one round's epochs. 'later' counts the compiles of all the rounds.",
        "",
        "| batch | variant | first call s | compile s | compiles | second call s "
        "| compiles, second call | compiles, later | steady epoch s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["steps"]:
        lines.append(
            f"| {r['batch']} | {r['name']} | {r['first_call_s']:.3f} "
            f"| {r['compile_s']:.3f} | {r['compiles_first_call']} "
            f"| {_seconds(r['second_call_s'])} | {r['compiles_second_call']} "
            f"| {r['compiles_later']} | {r['step_s'] * r['steps_per_epoch']:.4f} |"
        )
    lines += [
        "",
        "## Restarts: R runs vmapped in one fit_restarts call vs one fit run",
        "",
        "Costs are medians over rounds of per-round ratios (quartiles beside them). The raw-JAX "
        "columns are the floor's epoch vmapped over R runs against its own single run.",
        "",
        "| R | batch | vmapped ms/step (all runs) | one fit ms/step | cost vs one run "
        "| quartiles | speedup vs R sequential | raw JAX vmapped ms/step | raw JAX cost vs "
        "one run | fit_restarts vs raw JAX vmapped | call s | first call s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["restarts"]:
        low, high = r["cost_vs_one_run_quartiles"]
        lines.append(
            f"| {r['runs']} | {r['batch']} | {r['vmapped_step_s'] * 1e3:.3f} "
            f"| {r['one_fit_step_s'] * 1e3:.3f} | {r['cost_vs_one_run']:.2f}x "
            f"| {low:.2f}-{high:.2f} | {r['speedup_vs_sequential']:.2f}x "
            f"| {r['floor_vmapped_step_s'] * 1e3:.3f} | {r['floor_cost_vs_one_run']:.2f}x "
            f"| {r['vmapped_vs_vmapped_floor']:.2f}x | {r['call_wall_s']:.2f} "
            f"| {r['first_call_s']:.2f} |"
        )
    memory = report["memory"]
    device = memory["device"]
    if device["reported"]:
        device_line = ", ".join(
            f"{k} {v / 2**20:.1f} MiB" for k, v in device.items() if k != "reported"
        )
    else:
        device_line = f"not reported ({device['note']})"
    lines += [
        "",
        "## Memory",
        "",
        f"- Host peak RSS of the whole process (all variants, peers included): "
        f"{memory['host_peak_rss_mib']:.0f} MiB",
        f"- Device memory: {device_line}",
        "",
        "## Targets",
        "",
        "| target | measured | threshold | status | detail |",
        "|---|---:|---:|---|---|",
    ]
    for t in report["targets"]:
        measured = "-" if t["measured"] is None else f"{t['measured']:.3f}"
        lines.append(
            f"| {t['target']} | {measured} | {t['threshold']} | {t['status']} | {t['detail']} |"
        )
    if report["skipped"]:
        lines += ["", "Skipped:", ""] + [f"- {line}" for line in report["skipped"]]
    return "\n".join(lines)


def _positive_ints(text: str) -> tuple[int, ...]:
    """``"32,1024"`` -> ``(32, 1024)``; anything else is an argparse error."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers like 32,1024, got {text!r}")
    return values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and repeats (smoke run)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH")
    parser.add_argument(
        "--rounds", type=int, metavar="N", help="rounds of the training-step table (a rough look)"
    )
    parser.add_argument(
        "--batches",
        type=_positive_ints,
        metavar="B,B,...",
        help="batch sizes of the training-step table (default 32,128,1024; quick 32); the "
        "restarts run at the first",
    )
    parser.add_argument(
        "--restart-runs",
        type=_positive_ints,
        metavar="R,R,...",
        help="restart counts R of the restarts table (default 1,4,16; quick 2)",
    )
    parser.add_argument(
        "--matmul-sizes",
        type=_positive_ints,
        metavar="N,N,...",
        help="square matmul sizes sampled for the machine limit (default 1024,2048; quick 512)",
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    if args.matmul_sizes is not None:
        config = dataclasses.replace(config, matmul_sizes=args.matmul_sizes)
    if args.batches is not None:
        # A batch size the mode knows keeps its rounds; another gets the mode's last.
        known = dict(zip(config.batches, config.rounds, strict=True))
        rounds = tuple(known.get(b, config.rounds[-1]) for b in args.batches)
        config = dataclasses.replace(config, batches=args.batches, rounds=rounds)
    if args.restart_runs is not None:
        config = dataclasses.replace(config, restart_runs=args.restart_runs)
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds: expected a positive integer")
        config = dataclasses.replace(config, rounds=(args.rounds,) * len(config.batches))
    meter = CompileMeter()
    skipped: list[str] = []
    started = time.perf_counter()
    load_start = os.getloadavg()

    progress("measuring the matmul rate")
    probe = MatmulProbe(config.matmul_sizes)
    for _ in range(3):
        probe.sample()
    progress("measuring training steps")
    steps = measure_steps(config, meter, probe, skipped)
    progress("measuring gradients alone")
    grads = measure_gradients(config)
    progress("measuring restarts")
    restarts = measure_restarts(config, meter)
    peak = probe.gflops

    command = ["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command),
        "mode": "quick" if args.quick else "full",
        "config": config.__dict__,
        "machine": machine(),
        "versions": versions(),
        "load_average": {"start": load_start, "end": os.getloadavg()},
        "matmul": {
            "gflops": peak,
            "gflops_by_size": probe.rates(),
            "times_s": probe.times,
        },
        "steps": step_rows(steps),
        "gradients": grads,
        "restarts": restarts,
        "memory": {"host_peak_rss_mib": peak_rss_mib(), "device": device_memory()},
        "skipped": skipped,
    }
    report["targets"] = targets(steps, grads, restarts, peak)
    report["seconds"] = time.perf_counter() - started
    print(render(report))
    progress(f"done in {report['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())

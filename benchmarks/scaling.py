"""Data-parallel scaling: time per step of ``fungrad.fit`` on 1, 2 and 4 devices.

Without accelerators the devices are forced CPU devices
(``--xla_force_host_platform_device_count``) that share the machine's cores, so the figure
shows that sharded training runs and what the partitioning costs, not a speedup. On a
machine with several GPUs the same command measures real scaling.

    python benchmarks/scaling.py [--quick] [--batch 1024] [--devices 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="minibatch size (default 1024)")
    parser.add_argument("--devices", default="1,2,4", help="device counts (default 1,2,4)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per measurement")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.devices.split(",")]
    if "jax" not in sys.modules and not os.environ.get("JAX_PLATFORMS", "").startswith(
        ("gpu", "cuda", "tpu")
    ):
        flag = f"--xla_force_host_platform_device_count={max(counts)}"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()

    import jax
    import numpy as np

    import fungrad
    from fungrad import mlp, optim, parallel

    batch, epochs = (64, 3) if args.quick else (args.batch, args.epochs)
    sizes = [784, 64, 10] if args.quick else [784, 512, 512, 10]
    steps = 4 if args.quick else 16
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], size=batch * steps)
    params = mlp.init(jax.random.key(0), sizes)
    available = jax.device_count()
    print(
        f"backend {jax.default_backend()}, {available} devices, MLP {'-'.join(map(str, sizes))}, "
        f"batch {batch}, {steps} steps per epoch"
    )
    print("| devices | ms per step | samples/s | max diff vs 1 device |")
    print("|---|---|---|---|")
    reference = None
    for count in counts:
        if count > available:
            print(f"| {count} | skipped: only {available} devices | | |")
            continue
        stamps = []
        result = fungrad.fit(
            params,
            x,
            y,
            loss="softmax_cross_entropy",
            optimizer=optim.momentum(0.01),
            epochs=epochs,
            key=jax.random.key(1),
            batch_size=batch,
            mesh=parallel.data_mesh(count) if count > 1 else None,
            callback=lambda epoch, metrics, stamps=stamps: stamps.append(time.perf_counter()),
        )
        per_epoch = np.median(np.diff(stamps))  # the first epoch (compile) is excluded
        per_step = per_epoch / steps
        if reference is None:
            reference = result.params
        difference = max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(result.params), strict=True)
        )
        print(f"| {count} | {per_step * 1e3:.3f} | {batch / per_step:,.0f} | {difference:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

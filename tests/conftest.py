"""Test configuration shared by every test module.

Double precision is switched on for the whole test session, here, before any test module
creates an array: gradients are compared with ``jax.grad`` at about 1e-10 relative, which
only float64 can show. The consequence for every test: a bare ``jnp.asarray(1.0)`` or
``jax.random.normal(key, shape)`` is float64, so a test of float32 behaviour must create its
parameters and data with an explicit ``dtype=jnp.float32`` (``mlp.init`` already defaults to
float32 parameters).

The command line's compilation cache is off (``FUNGRAD_COMPILE_CACHE=0``) unless a test
turns it on for a subprocess.

Hypothesis runs under the deterministic ``ci`` profile unless ``HYPOTHESIS_PROFILE`` names
another one (``dev`` draws fresh random examples each run).
"""

import contextlib
import json
import os
import subprocess
import sys

import jax
import pytest
from hypothesis import settings

jax.config.update("jax_enable_x64", True)
# The command line's persistent compilation cache stays off in tests run in this process (a
# cache hit would hide the compilations some tests count); tests of the cache turn it on
# in a subprocess with a folder of their own.
os.environ["FUNGRAD_COMPILE_CACHE"] = "0"

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@contextlib.contextmanager
def _collect_compilations():
    compiled = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(kwargs.get("fun_name", event))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield compiled
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def count_compilations():
    """A context manager yielding a list with one entry per XLA backend compilation inside it."""
    return _collect_compilations


def _run_on_four_devices(script: str) -> dict:
    """Run ``script`` in a process with 4 forced CPU devices; return the JSON it printed.

    XLA fixes the device count when JAX starts, hence a process of its own. The script
    prints one line ``REPORT{...}``.
    """
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    line = next(ln for ln in completed.stdout.splitlines() if ln.startswith("REPORT"))
    return json.loads(line[len("REPORT") :])


@pytest.fixture(scope="session")
def run_on_four_devices():
    """``run_on_four_devices(script) -> dict``: a script's report from 4 forced CPU devices."""
    return _run_on_four_devices

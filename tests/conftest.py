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


FOUR_DEVICE_SCRIPTS: dict[str, str] = {}
"""Scripts to run on 4 forced CPU devices, by name: see :func:`four_device_script`."""

_DRIVER = """
import contextlib, io, json, sys
scripts, reports = json.loads(sys.stdin.read()), {}
for name, script in scripts.items():
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(script, name, "exec"), {"__name__": name})
    line = next(ln for ln in printed.getvalue().splitlines() if ln.startswith("REPORT"))
    reports[name] = json.loads(line[len("REPORT"):])
print("REPORT" + json.dumps(reports))
"""


def four_device_script(name: str, script: str) -> str:
    """Register ``script`` (which prints one line ``REPORT{...}``) to run on 4 CPU devices.

    Every registered script runs in one process, one after the other (XLA fixes the device
    count when JAX starts, hence a process of its own; one process starts JAX once for all).
    The tests reading the reports share the xdist group ``four_devices``, so one worker runs
    that process. Returns ``name``.
    """
    FOUR_DEVICE_SCRIPTS[name] = script
    return name


@pytest.fixture(scope="session")
def four_device_reports() -> dict:
    """``{name: report}`` of every registered script, from one process with 4 CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    completed = subprocess.run(
        [sys.executable, "-c", _DRIVER], input=json.dumps(FOUR_DEVICE_SCRIPTS),
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    line = next(ln for ln in completed.stdout.splitlines() if ln.startswith("REPORT"))
    return json.loads(line[len("REPORT") :])

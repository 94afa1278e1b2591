"""The command line's persistent compilation cache: a second identical run reuses the
compiled programs; the flag and the environment variable turn it off."""

import os
import subprocess
import sys

import pytest

from fungrad.cli.cache import cache_enabled, cache_folder


def run_train(tmp_path, cache, *extra, env_extra=None):
    env = {**os.environ, "FUNGRAD_CACHE_DIR": str(cache), "FUNGRAD_COMPILE_CACHE": "1"}
    env.update(env_extra or {})
    argv = [sys.executable, "-m", "fungrad", "train", "--epochs", "2", "--no-plot", "--quiet"]
    out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    result = subprocess.run([*argv, "--out", str(out), *extra], env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@pytest.mark.slow
def test_a_second_run_finds_every_program_in_the_cache(tmp_path):
    cache = tmp_path / "cache"
    runs = tmp_path / "runs"
    runs.mkdir()
    first = run_train(runs, cache)
    assert first, "the first run wrote no compiled program"
    second = run_train(runs, cache)
    assert second == first  # nothing new compiled: every program came from the cache


@pytest.mark.slow
def test_the_flag_and_the_variable_turn_it_off(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    assert run_train(runs, tmp_path / "a", "--no-compile-cache") == []
    assert run_train(runs, tmp_path / "b", env_extra={"FUNGRAD_COMPILE_CACHE": "off"}) == []


def test_the_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FUNGRAD_CACHE_DIR", str(tmp_path / "c"))
    assert cache_folder() == tmp_path / "c"
    monkeypatch.delenv("FUNGRAD_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache_folder() == tmp_path / "xdg" / "fungrad" / "jax"
    monkeypatch.setenv("FUNGRAD_COMPILE_CACHE", "0")
    assert not cache_enabled(True)
    monkeypatch.setenv("FUNGRAD_COMPILE_CACHE", "1")
    assert cache_enabled(True) and not cache_enabled(False)

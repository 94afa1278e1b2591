"""JAX's persistent compilation cache for the command line: a second identical run compiles
nothing.

``fungrad train`` (and ``predict``, ``evaluate``) keep XLA's compiled programs in the user's
cache folder: ``$FUNGRAD_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/fungrad/jax`` (on Linux
``~/.cache/fungrad/jax``; on macOS ``~/Library/Caches/fungrad/jax``; on Windows
``%LOCALAPPDATA%\\fungrad\\jax``). A program is found again by a hash of its computation, the
JAX and XLA versions and the device, so a changed program or an upgrade never reuses a stale
entry. JAX writes each entry to a temporary file and renames it into place, so two runs
sharing the folder at once are safe.

``--no-compile-cache`` or ``FUNGRAD_COMPILE_CACHE=0`` turn it off. To clear it, delete the
folder (``fungrad`` recreates it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENABLE = "FUNGRAD_COMPILE_CACHE"
FOLDER = "FUNGRAD_CACHE_DIR"


def cache_folder() -> Path:
    """The folder the compiled programs are kept in (see the module's docstring).

    Example:
        >>> import os
        >>> os.environ["FUNGRAD_CACHE_DIR"] = "/tmp/fungrad-cache"
        >>> str(cache_folder())
        '/tmp/fungrad-cache'
        >>> del os.environ["FUNGRAD_CACHE_DIR"]
    """
    if os.environ.get(FOLDER):
        return Path(os.environ[FOLDER]).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fungrad" / "jax"


def cache_enabled(flag: bool = True) -> bool:
    """Whether to use the cache: the command-line flag, unless ``FUNGRAD_COMPILE_CACHE`` is
    ``0``, ``false``, ``no`` or ``off``."""
    return flag and os.environ.get(ENABLE, "1").strip().lower() not in ("0", "false", "no", "off")


def use_compile_cache(flag: bool = True) -> Path | None:
    """Point JAX's persistent compilation cache at :func:`cache_folder`; returns the folder,
    or ``None`` when the cache is off or the folder cannot be created (then nothing is cached
    and the run goes on)."""
    if not cache_enabled(flag):
        return None
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    # fungrad's programs compile in well under JAX's default 1 s threshold: keep them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder

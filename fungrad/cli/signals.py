"""Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM.

The first signal only raises a flag: the run finishes the epoch it is in, saves, says how to
resume, and exits with ``128 + signal`` (130 for SIGINT, 143 for SIGTERM). Nothing is raised
inside JAX, so the signal can neither be swallowed nor crash the process. A second signal
gets the operating system's default action, which ends the process at once; the atomic saves
leave the last complete checkpoint intact.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interruption:
    """The signal received so far (``None`` until one arrives)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signal) if self.signal is not None else 0

    def _handle(self, number, frame) -> None:
        if self.signal is None:
            self.signal = number
            print(
                f"\nfungrad: {signal.Signals(number).name} received: stopping after this "
                "epoch and saving (send it again to abort at once)",
                file=sys.stderr,
                flush=True,
            )
        for each in _SIGNALS:
            signal.signal(each, signal.SIG_DFL)


@contextlib.contextmanager
def interruptible() -> Iterator[Interruption]:
    """Handle SIGINT and SIGTERM as an :class:`Interruption` flag while the block runs."""
    interruption = Interruption()
    previous = {each: signal.getsignal(each) for each in _SIGNALS}
    try:
        for each in _SIGNALS:
            signal.signal(each, interruption._handle)
    except ValueError:  # not the main thread: leave the handlers alone
        previous = {}
    try:
        yield interruption
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)

"""Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM.

The first signal only raises a flag: the run finishes the epoch it is in, saves, says how to
resume, and exits with ``128 + signal`` (130 for SIGINT, 143 for SIGTERM). Nothing is raised
inside JAX, so the signal can neither be swallowed nor crash the process. A second signal
ends the process at once; the atomic saves leave the last complete checkpoint intact.

Python runs its signal handlers only between bytecodes of the main thread, which can be
inside one XLA call (a compile, a long epoch) for minutes. So the signals are blocked in the
main thread (and in the threads it starts later) and taken by a watcher thread with
``sigwait``, which sees them the moment they arrive. Threads started earlier still get the
ordinary handler, which raises the same flag.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_WAKE = signal.SIGUSR1  # sent to the watcher thread to end it


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

    def receive(self, number: int) -> None:
        """The first signal raises the flag; a second one ends the process now."""
        if self.signal is not None:
            os._exit(128 + int(number))  # no cleanup: the saves on disk are already whole
        self.signal = number
        print(
            f"\nfungrad: {signal.Signals(number).name} received: stopping after this epoch "
            "and saving (send it again to abort at once)",
            file=sys.stderr,
            flush=True,
        )

    def _handle(self, number, frame) -> None:
        self.receive(number)


def _watch(interruption: Interruption) -> None:
    while True:
        number = signal.sigwait({*_SIGNALS, _WAKE})
        if number == _WAKE:
            return
        interruption.receive(number)


@contextlib.contextmanager
def interruptible() -> Iterator[Interruption]:
    """Handle SIGINT and SIGTERM as an :class:`Interruption` flag while the block runs."""
    interruption = Interruption()
    if threading.current_thread() is not threading.main_thread():
        yield interruption  # signals belong to the main thread; leave them alone
        return
    previous = {each: signal.getsignal(each) for each in _SIGNALS}
    for each in _SIGNALS:
        signal.signal(each, interruption._handle)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*_SIGNALS, _WAKE})
    watcher = threading.Thread(target=_watch, args=(interruption,), daemon=True)
    watcher.start()
    try:
        yield interruption
    finally:
        signal.pthread_kill(watcher.ident, _WAKE)
        watcher.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for each, handler in previous.items():
            signal.signal(each, handler)

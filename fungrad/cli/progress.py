"""What moves on screen while a run trains, and the timings of its epochs.

One run gets a progress bar with the latest metrics; restarts (one compiled program that
returns to the host about once a second) get the furthest epoch reached and the elapsed
time. The same callback turns a received SIGINT/SIGTERM into
:class:`fungrad.StopTraining`, so the run ends at the epoch boundary and saves.
"""

from __future__ import annotations

import sys
import time

from fungrad.cli.signals import Interruption


class Progress:
    """The ``callback`` of ``fit``/``fit_restarts`` for the command line; also times epochs."""

    def __init__(self, total: int, first: int, shown: bool, interruption: Interruption):
        self.interruption = interruption
        self.started = time.perf_counter()
        self.times: list[float] = []  # when each callback came
        self.epochs: list[int] = []  # epochs finished by then
        self.first = first  # epochs already run (a resumed run)
        self.total, self.shown = total, shown
        self.bar = None  # drawn at the first epoch: its rate and ETA leave out the compile

    def __call__(self, epoch: int, metrics) -> None:
        from fungrad.train import StopTraining

        self.times.append(time.perf_counter())
        self.epochs.append(epoch + 1)
        if self.shown and self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total, initial=self.first, desc="epochs", unit="epoch", file=sys.stderr
            )
        if self.bar is not None:
            if all(isinstance(value, float) for value in metrics.values()):
                shown = {n: f"{v:.4g}" for n, v in metrics.items() if n != "grad_norm"}
                self.bar.set_postfix(shown, refresh=False)
            self.bar.update(epoch + 1 - self.bar.n)
        if self.interruption.signal is not None:
            raise StopTraining(f"interrupted by {self.interruption.name} after epoch {epoch + 1}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def timings(self) -> tuple[float, float]:
        """``(compile_s, train_s)``: the first call's time beyond its epochs' share, the rest.

        The first call's time includes compiling the program. The time of an epoch is
        measured from the later calls; the compile time is estimated as the first call's
        time less that many epochs' worth.
        """
        if not self.times:
            return 0.0, 0.0
        total = self.times[-1] - self.started
        first = self.times[0] - self.started
        later = self.epochs[-1] - self.epochs[0]
        per_epoch = (self.times[-1] - self.times[0]) / later if later else 0.0
        compile_s = max(first - per_epoch * (self.epochs[0] - self.first), 0.0)
        return compile_s, total - compile_s

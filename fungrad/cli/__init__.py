"""The ``fungrad`` command line: ``fungrad train``, ``predict``, ``evaluate`` and ``check``.

``fungrad train`` with no arguments trains an MLP on the bundled handwritten digits and writes
a run folder (``runs/run-NNN``): the checkpoint, saved during training, the config, the
history, a plot and a summary. ``fungrad predict`` and ``fungrad evaluate`` apply a saved run
to new data. ``fungrad check`` holds both hand-written engines (the MLP engine and the
general engine) against ``jax.grad`` on random architectures on whatever backend is present. A user mistake prints one line and exits with
status 2; no traceback.

One module per part: ``parser`` (arguments and their types); the subcommands ``train``,
``predict``, ``evaluate`` and ``check``; for training, ``settings`` (new or resumed),
``prepare`` (data and model), ``folder`` (the run folder), ``writer`` (saves),
``progress``, ``signals``; ``outputs`` (summary, JSON and plot). The subcommands are imported
only when they run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["main", "UsageError"]


class UsageError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit status.

    Args:
        argv: the arguments after the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        0 on success, 1 when ``fungrad check`` finds a disagreement, 2 for a user mistake
        (one line on standard error, no traceback; ``FUNGRAD_DEBUG=1`` shows the traceback of
        a ``ValueError``/``TypeError``/``OSError``), 3 when training diverged (its last finite
        state saved), 130 / 143 when SIGINT / SIGTERM stopped training (after saving).
    """
    from fungrad.cli.parser import build_parser

    try:
        parser = build_parser()
        argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(argv)
        if args.command == "train":
            from fungrad.cli.parser import given_options

            args.given = given_options(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return _run_command(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as error:  # CheckpointError is a ValueError
        if os.environ.get("FUNGRAD_DEBUG"):
            raise
        print(f"fungrad: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fungrad: interrupted", file=sys.stderr)
        return 130


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a value unseen in training, ...) as one line on standard error."""
    print(f"fungrad: warning: {message}", file=sys.stderr, flush=True)


def _run_command(args) -> int:
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        return _command(args)


def _command(args) -> int:
    if args.command == "train":
        from fungrad.cli.train import run_train

        return run_train(args)
    if args.command == "predict":
        from fungrad.cli.predict import run_predict

        return run_predict(args)
    if args.command == "evaluate":
        from fungrad.cli.evaluate import run_evaluate

        return run_evaluate(args)
    from fungrad.cli.check import run_check

    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())

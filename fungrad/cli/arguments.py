"""Argument types of the ``fungrad`` command line.

Each turns the text a user typed into a value, or raises ``argparse.ArgumentTypeError``
saying what was expected and what was given; the parser names the option and ``main``
prints one line.

>>> positive_int("8"), fraction("0.2"), int_list("64,32")
(8, 0.2, [64, 32])
"""

from __future__ import annotations

import argparse
import math

__all__ = [
    "devices", "float_list", "fraction", "int_list", "positive_float", "positive_int",
    "seconds", "stop_spec",
]  # fmt: skip


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def name_list(text: str) -> list[str]:
    """``"tanh,relu"`` -> ``["tanh", "relu"]``: comma-separated names, none empty."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def int_list(text: str) -> list[int]:
    if text.strip() in ("", "none"):
        return []
    try:
        values = [int(v) for v in text.replace(" ", ",").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 64,32, got {text!r}"
        ) from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return values


def float_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.01,0.1, got {text!r}"
        ) from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected finite learning rates > 0, got {text!r}")
    return values


def devices(text: str) -> int | str:
    return "all" if text == "all" else positive_int(text)


def stop_spec(text: str) -> str:
    from fungrad import stopping

    try:
        stopping.parse(text)  # validate early; the condition itself is built later
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text}")
    return value

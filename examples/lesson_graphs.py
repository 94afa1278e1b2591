"""The lesson's computational graphs: values forward, gradients back, and their pictures.

Backpropagation on a computational graph runs the graph forward keeping every value, then
passes the derivative of the output back node by node: along a chain the local derivatives
multiply (the chain rule), and where a value branches into several uses the derivatives
that come back along the branches add. The lesson's three graphs:

1. ``y = a (a + b)`` at ``a = 3, b = 4``: ``y = 3 * 7 = 21``. ``a`` branches (into ``a + b``
   and into the product), so ``dy/da = (a + b) + a = 7 + 3 = 2a + b = 10``; ``dy/db = a = 3``.
2. ``z = sin(x^3)`` at ``x = 2``: a chain, ``dz/dx = cos(x^3) * 3x^2 = 12 cos 8``.
3. ``z = x^2 sin x`` at ``x = 2``: ``x`` branches into ``x^2`` and ``sin x``, so
   ``dz/dx = 2x sin x + x^2 cos x``.

For each graph this script computes the value and gradient with ``fungrad.graph`` (fungrad's
own reverse mode over the recorded graph), checks them against the closed forms, and writes
the picture with ``fungrad.graph.draw`` (SVG and PNG, each edge labelled with the value it
carries forward and the gradient it carries back) and its Graphviz text (``.dot``).

    python examples/lesson_graphs.py [--quick] [--out FOLDER]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from fungrad import graph  # noqa: E402

# name -> (function, arguments, title, closed-form value, closed-form gradient)
GRAPHS = {
    "y_a_times_a_plus_b": (
        lambda a, b: a * (a + b),
        (3.0, 4.0),
        "y = a (a + b) at a = 3, b = 4",
        lambda a, b: a * (a + b),
        lambda a, b: (2 * a + b, a),
    ),
    "z_sin_x_cubed": (
        lambda x: jnp.sin(x**3),
        (2.0,),
        "z = sin(x^3) at x = 2",
        lambda x: math.sin(x**3),
        lambda x: (3 * x**2 * math.cos(x**3),),
    ),
    "z_x_squared_sin_x": (
        lambda x: x**2 * jnp.sin(x),
        (2.0,),
        "z = x^2 sin x at x = 2",
        lambda x: x**2 * math.sin(x),
        lambda x: (2 * x * math.sin(x) + x**2 * math.cos(x),),
    ),
}
CLOSED_FORMS = {
    "y_a_times_a_plus_b": "dy/da = 2a + b, dy/db = a",
    "z_sin_x_cubed": "dz/dx = 3x^2 cos(x^3)",
    "z_x_squared_sin_x": "dz/dx = 2x sin x + x^2 cos x",
}


def check(name: str) -> float:
    """Print the graph's value and gradient next to the closed forms; return the largest
    difference."""
    f, args, title, value_of, gradient_of = GRAPHS[name]
    argnums = tuple(range(len(args)))
    value, grads = graph.value_and_grad(f, argnums=argnums)(*args)
    expected_value, expected_grads = value_of(*args), gradient_of(*args)
    print(title)
    print(f"  value        {float(value):.10g}  (closed form {expected_value:.10g})")
    print(f"  gradient     {', '.join(f'{float(g):.10g}' for g in grads)}")
    print(
        f"  closed form  {', '.join(f'{g:.10g}' for g in expected_grads)}  ({CLOSED_FORMS[name]})"
    )
    differences = [abs(float(value) - expected_value)]
    differences += [abs(float(g) - e) for g, e in zip(grads, expected_grads, strict=True)]
    return max(differences)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="write to a temporary folder (CI)")
    parser.add_argument(
        "--out", type=Path, help="folder for the pictures (default: ./lesson_graphs)"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path(tempfile.mkdtemp()) if args.quick else Path("lesson_graphs")
    args.out.mkdir(parents=True, exist_ok=True)

    difference = 0.0
    for name, (f, point, title, *_) in GRAPHS.items():
        difference = max(difference, check(name))
        for suffix in (".svg", ".png"):
            graph.draw(f, *point, path=args.out / f"{name}{suffix}", title=title)
        (args.out / f"{name}.dot").write_text(graph.to_dot(f, *point, title=title))
        print(f"  pictures     {args.out / name}.svg, .png, .dot")
    print(f"max difference from the closed forms: {difference:.3e}")
    if difference > 1e-12:
        raise SystemExit("the gradients differ from the closed forms")


if __name__ == "__main__":
    main()

"""Random programs: the general engine equals ``jax.value_and_grad`` on programs hypothesis draws.

A program is a random DAG. It starts from a few float inputs of random shapes and appends
random steps, each reading earlier nodes: elementwise functions (smooth, with kinks, and the
``jax.nn`` ones with custom JVP rules), broadcasting binary operations, contractions
(``einsum`` with random labels, dense layers), convolutions with random strides, padding,
dilations, layouts and groups, pooling windows, reductions, cumulative operations, reshapes,
transposes, broadcasts, pads, slices, indexing (gathers with traced integer indices,
``take_along_axis``, scatter-adds), ``cond``/``switch``, ``scan``/``fori_loop``, and any
step may be wrapped in a nested ``jax.jit`` or ``jax.checkpoint``. Operands are drawn
from all earlier nodes, so a value often feeds several later steps (its cotangents must add).
The loss is ``mean(last**2) / 2`` plus a random weighted sum of every node nothing else used.

Safety by construction: each node carries a bound on ``|value|`` and a step whose bound
grows past ``_LIMIT`` is rescaled by a constant, so nothing overflows; ``log``, ``sqrt``,
``rsqrt``, ``pow`` and negative powers see ``x * x + c`` with ``c > 0``; every operation
with a kink (``abs``, ``max``, ``relu``, ``clip``, a max reduction, ``cummax``, max pooling,
``argmax``) sees its operand plus a random noise array of the operand's shape, so ties and
zeros (from padding, broadcasting, repeated indices, ``x - x``) occur with probability zero.

Hypothesis draws a seed, the number of inputs and the number of steps; the seed's random
generator makes every other choice (which operation, operands, shapes, parameters, values),
which keeps the operations evenly mixed, and a failing program shrinks to fewer steps (the
same first steps). A failure prints the program step by step.

Each program is run once, jitted, through ``fungrad.graph.value_and_grad`` and through
``jax.value_and_grad`` with respect to every float input. Error measure: the value's
relative error; for each gradient leaf ``max|ours - jax| / max(max|jax|, 1e-3 * s)``, where
``s`` is the largest gradient entry of all leaves (an absolute floor scaled by the gradient's
magnitude: a leaf whose gradient cancels to nearly zero has no scale of its own). Tolerances:
``1e-10`` in float64, ``1e-4`` in float32 (rounding, times the 1e3 the floor allows).

What CI draws under the derandomized ``ci`` profile: 25 float64 programs in the quick subset
(``-m "not slow"``), and 50 more float64 and 25 float32 programs marked slow: 100 programs
differentiated in all (each is a fresh XLA compilation, about 0.4 s of one core). A slow
test draws 150 more of up to 12 steps, records them with ``jax.make_jaxpr`` only, and
checks that they use every primitive in ``REQUIRED_PRIMITIVES``. ``pytest -s`` prints the
largest errors seen; on CPU, over CI's programs, they were 4.5e-16 (float64) and 1.4e-7
(float32), and over 2,000 more programs drawn at random (float64, float32, mixed, under
``vmap``, eagerly) at most 2.9e-15 and 3.9e-7.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from jax import lax
from jax.extend.core import ClosedJaxpr, Jaxpr, primitives

from fungrad import graph

_LIMIT = 10.0  # a node whose bound exceeds this is rescaled to bound _RESCALED
_RESCALED = 3.0
_MAX_SIZE = 64  # elements per node
_TOLERANCE = {jnp.float64: 1e-10, jnp.float32: 1e-4}

# The largest error seen per dtype, printed at the end of the module (pytest -s).
LARGEST_ERROR: dict[str, float] = {}


# --- Programs ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Step:
    """One node: a new float input (``leaf``) or ``fn`` of earlier nodes and integer inputs."""

    text: str
    fn: Callable | None = None
    operands: tuple[int, ...] = ()
    ints: tuple[int, ...] = ()
    leaf: int | None = None


@dataclasses.dataclass(frozen=True)
class Program:
    """A random DAG with its inputs; ``program(floats, ints)`` is its scalar loss."""

    floats: tuple[np.ndarray, ...]
    ints: tuple[np.ndarray, ...]
    steps: tuple[Step, ...]
    sinks: tuple[tuple[int, np.ndarray], ...]

    def __call__(self, floats, ints):
        env = []
        for step in self.steps:
            if step.fn is None:
                env.append(floats[step.leaf])
            else:
                args = [env[i] for i in step.operands] + [ints[k] for k in step.ints]
                env.append(step.fn(*args))
        last = env[-1]
        loss = 0.5 * jnp.mean(last * last)
        for i, weights in self.sinks:
            loss = loss + jnp.sum(_like(weights, env[i]) * env[i])
        return loss

    def __repr__(self) -> str:
        lines = [f"n{i} = {step.text}" for i, step in enumerate(self.steps)]
        lines += [f"ints[{k}] = {v.tolist()}" for k, v in enumerate(self.ints)]
        lines.append(
            f"loss = mean(n{len(self.steps) - 1}**2)/2 + weighted sums of {self.sinks_text}"
        )
        return "Program(\n  " + "\n  ".join(lines) + "\n)"

    @property
    def sinks_text(self) -> str:
        return ", ".join(f"n{i}" for i, _ in self.sinks)


def _like(constant, x):
    """A NumPy constant in ``x``'s dtype, so float32 programs stay float32."""
    return jnp.asarray(constant, dtype=x.dtype)


@dataclasses.dataclass
class Node:
    shape: tuple[int, ...]
    bound: float

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class Builder:
    """Draws a program step by step; ``add`` infers each step's shape with ``eval_shape``."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.floats: list[np.ndarray] = []
        self.ints: list[np.ndarray] = []
        self.nodes: list[Node] = []
        self.steps: list[Step] = []

    def integer(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))

    def boolean(self) -> bool:
        return bool(self.rng.integers(2))

    def choice(self, options):
        return options[int(self.rng.integers(len(options)))]

    def permutation(self, items) -> list:
        return [items[i] for i in self.rng.permutation(len(items))]

    def pick(self, ok: Callable[[Node], bool] = lambda node: True) -> int | None:
        """An earlier node satisfying ``ok`` (``None`` if there is none)."""
        candidates = [i for i, node in enumerate(self.nodes) if ok(node)]
        if not candidates:
            return None
        return candidates[len(candidates) - 1 - self.integer(0, len(candidates) - 1)]

    def shape(self, max_rank: int = 3) -> tuple[int, ...]:
        rank = self.integer(0, max_rank)
        return tuple(self.integer(1, 4) for _ in range(rank))

    def uniform(self, shape=(), low: float = -1.0, high: float = 1.0) -> np.ndarray:
        return self.rng.uniform(low, high, size=shape)

    def scalar(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))

    def noise(self, shape) -> np.ndarray:
        """A tie breaker: added before a kink, it makes ties and zeros probability-zero events."""
        return self.rng.uniform(-1.0, 1.0, size=shape)

    def new_input(self, shape, bound: float = 2.0) -> int:
        self.floats.append(self.uniform(shape, -bound, bound))
        self.nodes.append(Node(tuple(shape), bound))
        self.steps.append(Step(f"input{tuple(shape)}", leaf=len(self.floats) - 1))
        return len(self.nodes) - 1

    def new_indices(self, shape, low: int, high: int) -> int:
        self.ints.append(self.rng.integers(low, high + 1, size=shape).astype(np.int32))
        return len(self.ints) - 1

    def add(self, name: str, fn, operands, bound: float, ints=(), text: str = "") -> bool:
        """Append ``fn(*operands, *ints)`` unless it is empty or too big; rescale a big bound."""
        structs = [jax.ShapeDtypeStruct(self.nodes[i].shape, jnp.float64) for i in operands]
        structs += [jax.ShapeDtypeStruct(self.ints[k].shape, jnp.int32) for k in ints]
        shape = tuple(jax.eval_shape(fn, *structs).shape)
        if not 0 < math.prod(shape) <= _MAX_SIZE:
            return False
        if not bound <= _LIMIT:
            scale, inner = _RESCALED / bound, fn
            fn = lambda *args: inner(*args) * scale  # noqa: E731
            text, bound = f"{text} * {scale:.3g}", _RESCALED
        wrapper = self.choice(["", "", "", "", "", "", "jit", "jit(jit)", "checkpoint"])
        fn = {
            "jit": jax.jit,
            "jit(jit)": lambda f: jax.jit(jax.jit(f)),
            "checkpoint": jax.checkpoint,
            "": lambda f: f,
        }[wrapper](fn)
        names = ", ".join(f"n{i}" for i in operands) + "".join(f", ints[{k}]" for k in ints)
        label = f"{wrapper}[{name}]" if wrapper else name
        self.nodes.append(Node(shape, float(bound)))
        self.steps.append(
            Step(f"{label}({names}) {text}".rstrip(), fn, tuple(operands), tuple(ints))
        )
        return True


# --- Elementwise functions -----------------------------------------------------------------
# Each entry: (builder, shape, bound of |x|) -> (f, bound of |f(x)|, text). Kinks see x + noise.
@jax.custom_jvp
def _smooth_abs(x):
    return jnp.sqrt(x * x + 1.0)


@_smooth_abs.defjvp
def _smooth_abs_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _smooth_abs(x)
    return y, x / y * t


@jax.custom_vjp
def _bump(x):
    return x / (1.0 + x * x)


def _bump_fwd(x):
    return _bump(x), x


def _bump_bwd(x, g):
    return (g * (1.0 - x * x) / (1.0 + x * x) ** 2,)


_bump.defvjp(_bump_fwd, _bump_bwd)


def _scaled(name, f, limit, bound_of):
    """``f(x * s)`` with ``|x * s| <= limit``: exponentials, and functions with a narrow domain."""

    def make(b, shape, bound):
        scale = min(1.0, limit / bound)
        return lambda x: f(x * scale), bound_of(bound * scale), f"scale {scale:.3g}"

    return name, make


def _kinked(name, f, grow=1.0):
    def make(b, shape, bound):
        noise = b.noise(shape)
        return lambda x: f(x + _like(noise, x)), bound + grow, "+ noise"

    return name, make


def _positive(name, f, bound_of):
    """``f(x * x + c)`` with ``c`` in [0.25, 1]: log, sqrt, rsqrt and negative powers."""

    def make(b, shape, bound):
        c = b.scalar(0.25, 1.0)
        return lambda x: f(x * x + c), bound_of(bound * bound + c, c), f"of x*x + {c:.3g}"

    return name, make


def _clip(b, shape, bound):
    """``jnp.clip`` (``max`` then ``min``) or ``lax.clamp``, of ``x + noise``."""
    noise, low, high = b.noise(shape), -b.scalar(0.1, 1.0) * bound, b.scalar(0.1, 1.0) * bound
    clamp = b.boolean()

    def clip(x):
        x = x + _like(noise, x)
        return lax.clamp(_like(low, x), x, _like(high, x)) if clamp else jnp.clip(x, low, high)

    text = f"{'lax.clamp' if clamp else 'jnp.clip'} x + noise to [{low:.3g}, {high:.3g}]"
    return clip, max(-low, high), text


def _round_trip(b, shape, bound):
    """A cast to the other float type and back (exact from float32, rounding from float64)."""

    def f(x):
        other = jnp.float32 if x.dtype == jnp.float64 else jnp.float64
        return lax.convert_element_type(lax.convert_element_type(x, other), x.dtype)

    return f, bound, ""


def _fixed(name, f, bound_of):
    return name, lambda b, shape, bound: (f, bound_of(bound), "")


UNARY = dict(
    [
        _fixed("neg", lambda x: -x, lambda b: b),
        _fixed("sin", jnp.sin, lambda b: 1.0),
        _fixed("cos", jnp.cos, lambda b: 1.0),
        _fixed("tanh", jnp.tanh, lambda b: 1.0),
        _fixed("sigmoid", jax.nn.sigmoid, lambda b: 1.0),
        _fixed("erf", lax.erf, lambda b: 1.0),
        _fixed("erfc", lax.erfc, lambda b: 2.0),
        _fixed("arctan", jnp.arctan, lambda b: math.pi / 2),
        _fixed("arcsinh", jnp.arcsinh, lambda b: math.asinh(b)),
        _fixed("fraction", lambda x: x - jnp.floor(x) + jnp.round(x) - jnp.ceil(x), lambda b: 2),
        _fixed("square", jnp.square, lambda b: b * b),
        _fixed("cube", lambda x: x**3, lambda b: b**3),
        _fixed("log1p_square", lambda x: jnp.log1p(x * x), lambda b: math.log1p(b * b)),
        _fixed("gelu_tanh", lambda x: jax.nn.gelu(x, approximate=True), lambda b: b + 1),
        _fixed("gelu_erf", lambda x: jax.nn.gelu(x, approximate=False), lambda b: b + 1),
        _fixed("softplus", jax.nn.softplus, lambda b: b + 1),
        _fixed("silu", jax.nn.silu, lambda b: b + 1),
        _fixed("log_sigmoid", jax.nn.log_sigmoid, lambda b: b + 1),
        _fixed("smooth_abs", _smooth_abs, lambda b: b + 1),
        _fixed("bump", _bump, lambda b: 0.5),
        _fixed("stop_gradient", lambda x: x * lax.stop_gradient(jnp.tanh(x)), lambda b: b),
        _fixed("copy", jnp.copy, lambda b: b),
        _scaled("exp", jnp.exp, 3.0, lambda b: math.exp(b)),
        _scaled("exp2", jnp.exp2, 3.0, lambda b: 2.0**b),
        _scaled("expm1", jnp.expm1, 3.0, lambda b: math.exp(b)),
        _scaled("sinh", jnp.sinh, 3.0, lambda b: math.cosh(b)),
        _scaled("cosh", jnp.cosh, 3.0, lambda b: math.cosh(b)),
        _scaled("tan", jnp.tan, 1.2, lambda b: math.tan(b)),
        _scaled("arcsin", jnp.arcsin, 0.9, lambda b: math.pi / 2),
        _scaled("arccos", jnp.arccos, 0.9, lambda b: math.pi),
        _scaled("arctanh", jnp.arctanh, 0.9, lambda b: math.atanh(b)),
        _scaled("erf_inv", lax.erf_inv, 0.9, lambda b: 1.2),
        _positive("log", jnp.log, lambda top, c: max(-math.log(c), math.log(top))),
        _positive("sqrt", jnp.sqrt, lambda top, c: math.sqrt(top)),
        _positive("rsqrt", lax.rsqrt, lambda top, c: c**-0.5),
        _positive("reciprocal", lambda p: p**-1, lambda top, c: 1 / c),
        _positive("inverse_square", lambda p: p**-2, lambda top, c: c**-2),
        _positive("pow_1.5", lambda p: p**1.5, lambda top, c: top**1.5),
        _positive("cbrt", jnp.cbrt, lambda top, c: top ** (1 / 3)),
        _positive("arccosh", lambda p: jnp.arccosh(p + 1), lambda top, c: math.acosh(top + 1)),
        _positive("lgamma", lax.lgamma, lambda top, c: max(1.3, math.lgamma(top))),
        _kinked("abs", jnp.abs),
        _kinked("relu", jax.nn.relu),
        _kinked("relu6", jax.nn.relu6),
        _kinked("leaky_relu", jax.nn.leaky_relu),
        _kinked("elu", jax.nn.elu),
        _kinked("sign_times", lambda x: jnp.sign(x) * x),
        _kinked("where", lambda x: jnp.where(x > 0, x, jnp.sin(x))),
        ("clip", _clip),
        ("round_trip", _round_trip),
    ]
)
# Bounded by 1 whatever the input: what a scan's carry goes through.
SQUASHING = ["sin", "cos", "tanh", "sigmoid", "erf", "bump"]


def _unary(b: Builder) -> bool:
    x = b.pick()
    name = b.choice(sorted(UNARY))
    f, bound, text = UNARY[name](b, b.nodes[x].shape, b.nodes[x].bound)
    return b.add(name, f, [x], bound, text=text)


def _broadcastable(shape_a, shape_b) -> bool:
    try:
        return math.prod(np.broadcast_shapes(shape_a, shape_b)) <= _MAX_SIZE
    except ValueError:
        return False


def _binary(b: Builder) -> bool:
    """A broadcasting binary operation of two nodes (possibly the same node twice)."""
    x = b.pick()
    y = b.pick(lambda node: _broadcastable(node.shape, b.nodes[x].shape))
    bx, by = b.nodes[x].bound, b.nodes[y].bound
    out_shape = np.broadcast_shapes(b.nodes[x].shape, b.nodes[y].shape)
    name = b.choice(
        ["add", "sub", "mul", "div", "max", "min", "pow", "where", "logaddexp", "rem", "arctan2"]
    )
    c, noise = b.scalar(0.25, 1.0), b.noise(out_shape)
    power = 1.5 / max(by, 1.5)
    fns = {
        "add": (jnp.add, bx + by),
        "sub": (jnp.subtract, bx + by),
        "mul": (jnp.multiply, bx * by),
        "div": (lambda u, v: u / (v * v + c), bx / c),
        "max": (lambda u, v: jnp.maximum(u + _like(noise, u), v), max(bx + 1, by)),
        "min": (lambda u, v: jnp.minimum(u + _like(noise, u), v), max(bx + 1, by)),
        "pow": (
            lambda u, v: jnp.power(u * u + c, v * power),
            max((bx * bx + c) ** 1.5, c**-1.5),
        ),
        "where": (lambda u, v: jnp.where(u + _like(noise, u) > 0, u, v), max(bx, by)),
        "logaddexp": (jnp.logaddexp, max(bx, by) + 1),
        "rem": (lambda u, v: jnp.fmod(u, v * v + c), bx),
        "arctan2": (jnp.arctan2, math.pi),
    }
    f, bound = fns[name]
    return b.add(name, f, [x, y], bound, text=f"c={c:.3g}" if name in ("div", "pow", "rem") else "")


# --- Contractions and convolutions ---------------------------------------------------------
def _einsum(b: Builder) -> bool:
    """``einsum`` with random labels: shared labels are batch or contracted, others kept or summed."""
    x = b.pick(lambda node: len(node.shape) <= 3)
    sizes = dict(zip("abc", b.nodes[x].shape, strict=False))
    x_labels = "abc"[: len(b.nodes[x].shape)]
    if b.boolean():
        y = b.pick(lambda node: len(node.shape) <= 3)
        y_shape = b.nodes[y].shape
    else:
        y_shape = None
    y_labels = ""
    for j in range(b.integer(1, 3) if y_shape is None else len(y_shape)):
        shared = [
            k for k in x_labels if k not in y_labels and (y_shape is None or sizes[k] == y_shape[j])
        ]
        if shared and b.boolean():
            y_labels += b.choice(shared)
        else:
            y_labels += "defg"[j]
            sizes["defg"[j]] = b.integer(1, 4) if y_shape is None else y_shape[j]
    if y_shape is None:
        y = b.new_input(tuple(sizes[k] for k in y_labels), bound=1.0)
    labels = sorted(set(x_labels + y_labels))
    out = [k for k in b.permutation(labels) if b.boolean()]
    spec = f"{x_labels},{y_labels}->{''.join(out)}"
    summed = math.prod(sizes[k] for k in labels if k not in out)
    bound = b.nodes[x].bound * b.nodes[y].bound * summed
    return b.add("einsum", lambda u, v: jnp.einsum(spec, u, v), [x, y], bound, text=spec)


def _dense(b: Builder) -> bool:
    """A dense layer ``x @ w + bias`` with new parameters."""
    x = b.pick(lambda node: len(node.shape) >= 1)
    if x is None:
        return False
    n_in, n_out = b.nodes[x].shape[-1], b.integer(1, 4)
    w, bias = b.new_input((n_in, n_out), bound=1.0), b.new_input((n_out,), bound=1.0)
    bound = b.nodes[x].bound * n_in + 1.0
    return b.add("dense", lambda u, v, c: u @ v + c, [x, w, bias], bound)


_LAYOUTS = {
    1: [("NCH", "OIH", "NCH"), ("NHC", "HIO", "NHC")],
    2: [("NCHW", "OIHW", "NCHW"), ("NHWC", "HWIO", "NHWC"), ("NCHW", "HWIO", "NHWC")],
}


def _conv_arguments(b: Builder, spatial: int):
    """Random shapes, layouts and numbers of a grouped, strided, padded, dilated convolution."""
    batch_groups = b.choice([1, 1, 1, 2])
    groups = 1 if batch_groups > 1 else b.choice([1, 1, 2])
    batch = b.choice([1, 2]) * batch_groups
    in_channels = groups * b.integer(1, 2)
    out_channels = groups * batch_groups * b.integer(1, 2)
    size = [b.integer(2, 5) for _ in range(spatial)]
    window = [b.integer(1, 3) for _ in range(spatial)]
    padding = b.choice(["SAME", "VALID", "explicit"])
    if padding == "explicit":
        padding = [(b.integer(-1, 2), b.integer(-1, 2)) for _ in range(spatial)]
    numbers = dict(
        window_strides=[b.integer(1, 2) for _ in range(spatial)],
        padding=padding,
        lhs_dilation=[b.choice([1, 1, 2]) for _ in range(spatial)],
        rhs_dilation=[b.choice([1, 1, 2]) for _ in range(spatial)],
        feature_group_count=groups,
        batch_group_count=batch_groups,
    )
    lhs_spec, rhs_spec, out_spec = b.choice(_LAYOUTS[spatial])
    dims = dict(N=batch, C=in_channels, H=size[0], W=size[-1])
    lhs_shape = tuple(dims[k] for k in lhs_spec)
    kernel = dict(O=out_channels, I=in_channels // groups, H=window[0], W=window[-1])
    rhs_shape = tuple(kernel[k] for k in rhs_spec)
    numbers["dimension_numbers"] = (lhs_spec, rhs_spec, out_spec)
    return lhs_shape, rhs_shape, numbers, in_channels // groups * math.prod(window)


def _conv(b: Builder) -> bool:
    """``lax.conv_general_dilated`` on a node resized to an image, with a new kernel."""
    x = b.pick()
    lhs_shape, rhs_shape, numbers, fan_in = _conv_arguments(b, b.choice([1, 2]))
    if math.prod(lhs_shape) > _MAX_SIZE:
        return False

    def conv(u, image, kernel):
        lhs = jnp.resize(u, lhs_shape) + image
        return lax.conv_general_dilated(lhs, kernel, **numbers)

    try:
        shapes = (b.nodes[x].shape, lhs_shape, rhs_shape)
        jax.eval_shape(conv, *(jax.ShapeDtypeStruct(s, jnp.float64) for s in shapes))
    except (TypeError, ValueError):  # an empty output, from negative padding
        return False
    image, kernel = b.new_input(lhs_shape, bound=1.0), b.new_input(rhs_shape, bound=1.0)
    text = ", ".join(f"{k}={v}" for k, v in numbers.items())
    bound = (b.nodes[x].bound + 1.0) * fan_in
    return b.add("conv", conv, [x, image, kernel], bound, text=text)


# --- Pooling, reductions, cumulative operations --------------------------------------------
def _pool(b: Builder) -> bool:
    """``lax.reduce_window``: max, min or sum pooling, or an average (sum over window size)."""
    x = b.pick(lambda node: len(node.shape) >= 1)
    if x is None:
        return False
    shape, bound = b.nodes[x].shape, b.nodes[x].bound
    window = tuple(b.integer(1, min(3, d)) for d in shape)
    strides = tuple(b.integer(1, 2) for _ in shape)
    padding = b.choice(["VALID", "SAME"])
    kind = b.choice(["max", "min", "sum", "avg"])
    noise, count = b.noise(shape), math.prod(window)

    def pool(u):
        if kind in ("max", "min"):
            init, op = (-jnp.inf, lax.max) if kind == "max" else (jnp.inf, lax.min)
            return lax.reduce_window(u + _like(noise, u), init, op, window, strides, padding)
        total = lax.reduce_window(u, 0.0, lax.add, window, strides, padding)
        return total / count if kind == "avg" else total

    bound = {"max": bound + 1, "min": bound + 1, "sum": bound * count, "avg": bound}[kind]
    return b.add(
        f"{kind}_pool", pool, [x], bound, text=f"window={window} strides={strides} {padding}"
    )


def _axes(b: Builder, rank: int):
    """``None`` (all), one axis, or a tuple of axes."""
    form = b.choice(["all", "one", "several"]) if rank else "all"
    if form == "all":
        return None
    if form == "one":
        return b.integer(-rank, rank - 1)
    return tuple(a for a in range(rank) if b.boolean())


def _reduction(b: Builder) -> bool:
    x = b.pick()
    shape, bound = b.nodes[x].shape, b.nodes[x].bound
    axes, keepdims = _axes(b, len(shape)), b.boolean()
    name = b.choice(["sum", "mean", "max", "min", "logsumexp", "var", "prod", "argmax", "argmin"])
    count = math.prod(np.zeros(shape).sum(axis=axes, keepdims=True).shape) or 1
    count = math.prod(shape) // count
    noise = b.noise(shape)

    def reduce(u):
        noisy = u + _like(noise, u)
        if name in ("argmax", "argmin"):
            axis = 0 if axes is None or isinstance(axes, tuple) else axes
            flat = noisy.reshape(-1) if axes is None else noisy
            source = u.reshape(-1) if axes is None else u
            choose = jnp.argmax if name == "argmax" else jnp.argmin
            return jnp.take_along_axis(source, choose(flat, axis, keepdims=True), axis)
        if name == "prod":
            return jnp.prod(u * (1.0 / max(bound, 1.0)), axis=axes, keepdims=keepdims)
        if name == "logsumexp":
            return jax.nn.logsumexp(u, axis=axes, keepdims=keepdims)
        f = {"sum": jnp.sum, "mean": jnp.mean, "var": jnp.var, "max": jnp.max, "min": jnp.min}
        return f[name](noisy if name in ("max", "min") else u, axis=axes, keepdims=keepdims)

    bounds = dict(
        sum=bound * count,
        mean=bound,
        max=bound + 1,
        min=bound + 1,
        prod=1.0,
        logsumexp=bound + math.log(count) + 1,
        var=bound * bound,
        argmax=bound,
        argmin=bound,
    )
    return b.add(name, reduce, [x], bounds[name], text=f"axes={axes} keepdims={keepdims}")


def _order(b: Builder) -> bool:
    """``sort``, ``top_k``, a gather by ``argsort``, or ``unstack`` and stack in reverse."""
    x = b.pick(lambda node: len(node.shape) >= 1)
    if x is None:
        return False
    shape, bound = b.nodes[x].shape, b.nodes[x].bound
    axis, noise = b.integer(0, len(shape) - 1), b.noise(shape)
    kind = b.choice(["sort", "top_k", "argsort", "unstack"])
    k = b.integer(1, shape[-1])

    def order(u):
        noisy = u + _like(noise, u)
        if kind == "sort":
            return jnp.sort(noisy, axis=axis)
        if kind == "top_k":
            return lax.top_k(noisy, k)[0]
        if kind == "argsort":
            return jnp.take_along_axis(u, jnp.argsort(noisy, axis=axis), axis)
        return jnp.stack(jnp.unstack(u, axis=axis)[::-1], axis=axis)

    return b.add(kind, order, [x], bound + 1, text=f"axis={axis} k={k}")


def _cumulative(b: Builder) -> bool:
    x = b.pick(lambda node: len(node.shape) >= 1)
    if x is None:
        return False
    shape, bound = b.nodes[x].shape, b.nodes[x].bound
    axis, reverse = b.integer(0, len(shape) - 1), b.boolean()
    name = b.choice(["cumsum", "cumprod", "cummax", "cummin", "jnp.cumsum", "jnp.cumprod"])
    noise = b.noise(shape)

    def cumulative(u):
        if name == "jnp.cumsum":
            return jnp.cumsum(u, axis=axis)
        if name == "jnp.cumprod":
            return jnp.cumprod(u * (1.0 / max(bound, 1.0)), axis=axis)
        if name == "cumprod":
            return lax.cumprod(u * (1.0 / max(bound, 1.0)), axis=axis, reverse=reverse)
        if name == "cumsum":
            return lax.cumsum(u, axis=axis, reverse=reverse)
        op = lax.cummax if name == "cummax" else lax.cummin
        return op(u + _like(noise, u), axis=axis, reverse=reverse)

    bound = {"cumsum": bound * shape[axis], "jnp.cumsum": bound * shape[axis]}.get(
        name, 1.0 if "prod" in name else bound + 1
    )
    return b.add(name, cumulative, [x], bound, text=f"axis={axis} reverse={reverse}")


# --- Structure -----------------------------------------------------------------------------
def _factor_shape(b: Builder, size: int) -> tuple[int, ...]:
    """A random shape of ``size`` elements: its prime factors grouped, maybe with 1s."""
    factors, n, p = [], size, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    factors = b.permutation(factors)
    dims = [1] * b.integer(1 if not factors else 0, 1)
    for f in factors:
        if dims and b.boolean():
            dims[-1] *= f
        else:
            dims.append(f)
    return tuple(dims[:4] if len(dims) <= 4 else [*dims[:3], math.prod(dims[3:])])


def _reshape_like(b: Builder) -> bool:
    x = b.pick()
    shape, bound = b.nodes[x].shape, b.nodes[x].bound
    rank = len(shape)
    name = b.choice(["reshape", "transpose", "broadcast", "expand_dims", "squeeze", "flip"])
    if name == "reshape":
        new = _factor_shape(b, math.prod(shape))
        return b.add(name, lambda u: u.reshape(new), [x], bound, text=f"to {new}")
    if name == "transpose" and rank >= 2:
        perm = tuple(b.permutation(range(rank)))
        return b.add(name, lambda u: jnp.transpose(u, perm), [x], bound, text=f"{perm}")
    if name == "broadcast":
        new = tuple(d if d != 1 or not b.boolean() else b.integer(2, 3) for d in shape)
        new = (b.integer(1, 3),) * b.integer(0, 1) + new
        return b.add(name, lambda u: jnp.broadcast_to(u, new), [x], bound, text=f"to {new}")
    if name == "squeeze" and 1 in shape:
        axes = tuple(a for a, d in enumerate(shape) if d == 1 and b.boolean())
        return b.add(name, lambda u: jnp.squeeze(u, axes), [x], bound, text=f"axes={axes}")
    if name == "flip" and rank >= 1:
        axes = _axes(b, rank)
        return b.add(name, lambda u: jnp.flip(u, axes), [x], bound, text=f"axes={axes}")
    axis = b.integer(-rank - 1, rank)
    return b.add("expand_dims", lambda u: jnp.expand_dims(u, axis), [x], bound, text=f"{axis}")


def _join(b: Builder) -> bool:
    """``concatenate`` or ``stack`` of 2-3 nodes (repeats allowed) along a random axis."""
    x = b.pick()
    shape = b.nodes[x].shape
    if b.boolean() or not shape:
        others = [b.pick(lambda node: node.shape == shape) for _ in range(b.integer(1, 2))]
        axis = b.integer(-len(shape) - 1, len(shape))
        operands = [x, *others]
        bound = max(b.nodes[i].bound for i in operands)
        return b.add("stack", lambda *us: jnp.stack(us, axis), operands, bound, text=f"{axis}")
    axis = b.integer(0, len(shape) - 1)

    def fits(node):
        return len(node.shape) == len(shape) and all(
            d == e for a, (d, e) in enumerate(zip(node.shape, shape, strict=True)) if a != axis
        )

    operands = [x] + [b.pick(fits) for _ in range(b.integer(1, 2))]
    bound = max(b.nodes[i].bound for i in operands)
    return b.add(
        "concatenate", lambda *us: jnp.concatenate(us, axis), operands, bound, text=f"axis={axis}"
    )


def _pad(b: Builder) -> bool:
    """``lax.pad`` (negative and interior padding, a node's mean as the value) or ``jnp.pad``."""
    x = b.pick(lambda node: len(node.shape) >= 1)
    if x is None:
        return False
    shape, bound = b.nodes[x].shape, b.nodes[x].bound
    mode = b.choice(["lax", "constant", "edge", "reflect", "symmetric", "wrap", "mean"])
    if mode == "lax":
        config = []
        for d in shape:
            interior = b.integer(0, 1)
            full = d + (d - 1) * interior
            low, high = b.integer(-1, 2), b.integer(-1, 2)
            config.append((low, high, interior) if full + low + high >= 1 else (0, 0, interior))
        value = b.pick()
        bound = max(bound, b.nodes[value].bound)
        return b.add(
            "lax.pad",
            lambda u, v: lax.pad(u, jnp.mean(v), config),
            [x, value],
            bound,
            text=f"{config}",
        )
    widths = [
        (
            b.integer(0, max(d - 1, 1) if mode == "reflect" else 2),
            b.integer(0, max(d - 1, 1) if mode == "reflect" else 2),
        )
        for d in shape
    ]
    if mode == "reflect":
        widths = [(lo, hi) if d > 1 else (0, 0) for (lo, hi), d in zip(widths, shape, strict=True)]
    value = b.scalar(-1.0, 1.0)
    kwargs = {"constant_values": value} if mode == "constant" else {}
    return b.add(
        f"pad_{mode}",
        lambda u: jnp.pad(u, widths, mode=mode, **kwargs),
        [x],
        max(bound, 1.0),
        text=f"{widths}",
    )


def _slice_of(b: Builder, d: int):
    """A basic index of an axis of size ``d``: a non-empty slice with step 1, 2, -1 or -2."""
    step = b.choice([1, 1, 2, -1, -2])
    start, stop = b.integer(-d, d - 1), b.integer(-d - 1, d)
    index = slice(start, stop, step)
    if len(range(*index.indices(d))) == 0:
        return slice(None, None, step)
    return index


def _slice(b: Builder) -> bool:
    x = b.pick(lambda node: len(node.shape) >= 1)
    if x is None:
        return False
    shape, bound = b.nodes[x].shape, b.nodes[x].bound
    kind = b.choice(["basic", "int", "dynamic_slice", "dynamic_update_slice", "split", "roll"])
    if kind == "basic":
        index = tuple(_slice_of(b, d) for d in shape)
        return b.add("slice", lambda u: u[index], [x], bound, text=f"{index}")
    if kind == "int":
        axis = b.integer(0, len(shape) - 1)
        i = b.integer(-shape[axis], shape[axis] - 1)
        index = (slice(None),) * axis + (i,)
        return b.add("index", lambda u: u[index], [x], bound, text=f"{index}")
    if kind in ("dynamic_slice", "dynamic_update_slice"):
        sizes = tuple(b.integer(1, d) for d in shape)
        # Starts within range: XLA on CPU can miscompile a clamped start (see
        # test_dynamic_slice_started_past_the_end).
        b.ints.append(np.array([b.integer(0, d - n) for d, n in zip(shape, sizes, strict=True)]))
        starts = len(b.ints) - 1
        if kind == "dynamic_slice":

            def dynamic_slice(u, s):
                return lax.dynamic_slice(u, [s[a] for a in range(len(shape))], sizes)

            return b.add(kind, dynamic_slice, [x], bound, ints=[starts], text=f"sizes={sizes}")
        y = b.pick()

        def update(u, v, s):
            starts = [s[a] for a in range(len(shape))]
            return lax.dynamic_update_slice(u, jnp.resize(v, sizes), starts)

        bound = max(bound, b.nodes[y].bound)
        return b.add(kind, update, [x, y], bound, ints=[starts], text=f"sizes={sizes}")
    axis = b.integer(0, len(shape) - 1)
    if kind == "roll":
        shift = b.integer(-3, 3)
        return b.add("roll", lambda u: jnp.roll(u, shift, axis), [x], bound, text=f"{shift}")
    cuts = sorted({b.integer(0, shape[axis]) for _ in range(b.integer(1, 2))})

    def split(u):
        return jnp.concatenate(jnp.split(u, cuts, axis)[::-1], axis)

    return b.add("split", split, [x], bound, text=f"at {cuts} axis={axis}, reversed")


def _indexing(b: Builder) -> bool:
    """Gathers and scatter-adds with traced integer indices (repeated, negative, clipped)."""
    x = b.pick(lambda node: len(node.shape) >= 1)
    if x is None:
        return False
    shape, bound = b.nodes[x].shape, b.nodes[x].bound
    kind = b.choice(["x[i]", "x[:, i]", "x[i, j]", "take", "take_along_axis", "add", "set"])
    if kind == "x[:, i]" and len(shape) < 2 or kind == "x[i, j]" and len(shape) < 2:
        kind = "x[i]"
    index_shape = tuple(b.integer(1, 3) for _ in range(b.integer(1, 2)))
    if kind in ("x[i]", "x[:, i]"):
        d = shape[0 if kind == "x[i]" else 1]
        i = b.new_indices(index_shape, -d, d - 1)
        if kind == "x[i]":
            return b.add("gather", lambda u, i: u[i], [x], bound, ints=[i], text=kind)
        return b.add("gather", lambda u, i: u[:, i], [x], bound, ints=[i], text=kind)
    if kind == "x[i, j]":
        i = b.new_indices(index_shape, -shape[0], shape[0] - 1)
        j = b.new_indices(index_shape[-1:], 0, shape[1] - 1)  # broadcast against i
        return b.add("gather", lambda u, i, j: u[i, j], [x], bound, ints=[i, j], text=kind)
    axis = b.integer(0, len(shape) - 1)
    d = shape[axis]
    if kind == "take":
        mode = b.choice(["clip", "wrap"])
        i = b.new_indices(index_shape, -d - 2, d + 2)
        return b.add(
            "take",
            lambda u, i: jnp.take(u, i, axis, mode=mode),
            [x],
            bound,
            ints=[i],
            text=f"axis={axis} mode={mode}",
        )
    if kind == "take_along_axis":
        i_shape = tuple(b.integer(1, 3) if a == axis else n for a, n in enumerate(shape))
        i = b.new_indices(i_shape, 0, d - 1)
        return b.add(
            kind,
            lambda u, i: jnp.take_along_axis(u, i, axis),
            [x],
            bound,
            ints=[i],
            text=f"axis={axis}",
        )
    # Scatter along axis 0: ``add`` with repeated indices, ``set`` with distinct ones.
    k = b.integer(1, 3)
    if kind == "add":
        i = b.new_indices((k,), -shape[0], shape[0] - 1)
    else:
        b.ints.append(b.rng.permutation(shape[0])[: min(k, shape[0])].astype(np.int32))
        i, k = len(b.ints) - 1, min(k, shape[0])
    y = b.pick()

    def scatter(u, v, i):
        updates = jnp.resize(v, (k, *shape[1:]))
        return u.at[i].add(updates) if kind == "add" else u.at[i].set(updates)

    bound = bound + k * b.nodes[y].bound if kind == "add" else max(bound, b.nodes[y].bound)
    return b.add(f"scatter_{kind}", scatter, [x, y], bound, ints=[i])


# --- Control flow --------------------------------------------------------------------------
def _cond(b: Builder) -> bool:
    """``cond`` on a node's sign, or ``switch`` on a traced integer, over random branches."""
    x, y = b.pick(), b.pick()
    shape, bound_y = b.nodes[x].shape, b.nodes[y].bound
    branches, bounds, names = [], [], []
    for _ in range(b.choice([2, 2, 3])):
        name = b.choice(sorted(UNARY))
        f, bound, _ = UNARY[name](b, shape, b.nodes[x].bound)
        weight = b.scalar(-1.0, 1.0) if b.boolean() else 0.0

        def branch(u, v, f=f, weight=weight):
            return f(u) + weight * jnp.mean(v) if weight else f(u)

        branches.append(branch)
        bounds.append(bound + abs(weight) * bound_y)
        names.append(name)
    if len(branches) == 2 and b.boolean():
        threshold = b.scalar(-0.5, 0.5) * bound_y

        def cond(u, v):
            return lax.cond(jnp.sum(v) > threshold, *branches, u, v)

        return b.add("cond", cond, [x, y], max(bounds), text=f"{names}")
    index = b.new_indices((), -1, len(branches))  # switch clamps the index

    def switch(u, v, i):
        return lax.switch(i, branches, u, v)

    return b.add("switch", switch, [x, y], max(bounds), ints=[index], text=f"{names}")


def _scan(b: Builder) -> bool:
    """``scan`` over a node's first axis with a carry and a closed-over node, or ``fori_loop``."""
    xs = b.pick(lambda node: len(node.shape) >= 1)
    if xs is None:
        return False
    carry, closed = b.pick(lambda node: node.size <= 16), b.pick()
    if carry is None:
        carry = b.new_input(())
    shape = b.nodes[xs].shape
    squash = b.choice(SQUASHING)
    f1, _, _ = UNARY[squash](b, b.nodes[carry].shape, 1.0)
    a, s, e, d = (b.scalar(-1.0, 1.0) for _ in range(4))
    if b.boolean():
        steps = b.integer(1, 4)

        def loop(u, c0):
            def body(i, c):
                return f1(a * c + s * jnp.mean(u[i % shape[0]]))

            return lax.fori_loop(0, steps, body, c0)

        return b.add("fori_loop", loop, [xs, carry], 1.0, text=f"{steps} steps, {squash}")
    name = b.choice(sorted(UNARY))
    f2, bound, _ = UNARY[name](b, shape[1:], b.nodes[xs].bound)
    reverse, unroll = b.boolean(), b.choice([1, 2])

    def scan(u, c0, v):
        def body(c, x_t):
            h = f1(a * c + s * jnp.mean(x_t) + e * jnp.mean(v))
            return h, f2(x_t) * jnp.mean(h)

        final, ys = lax.scan(body, c0, u, reverse=reverse, unroll=unroll)
        return ys + d * jnp.sum(final)

    bound = bound + abs(d) * b.nodes[carry].size
    return b.add(
        "scan",
        scan,
        [xs, carry, closed],
        bound,
        text=f"carry {squash}, outputs {name}, reverse={reverse}, unroll={unroll}",
    )


# --- Drawing programs ----------------------------------------------------------------------
# Weights roughly proportional to the number of variants each family draws from.
OPERATIONS = (
    [_unary] * 6
    + [_binary] * 3
    + [_einsum] * 2
    + [_dense, _conv, _pool]
    + [_reduction] * 3
    + [_cumulative] * 2
    + [_order]
    + [_reshape_like] * 2
    + [_join]
    + [_pad] * 2
    + [_slice] * 2
    + [_indexing] * 2
    + [_cond, _scan]
)


@st.composite
def programs(draw, max_steps: int = 6) -> Program:
    """A random program: 1-3 inputs of random shapes, then up to ``max_steps`` random steps."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = Builder(rng)
    for _ in range(draw(st.integers(1, 3))):
        b.new_input(b.shape())
    steps, attempts = draw(st.integers(1, max_steps)), 0
    while steps and attempts < 4 * max_steps:
        steps -= bool(b.choice(OPERATIONS)(b))
        attempts += 1
    used = {i for step in b.steps for i in step.operands}
    last = len(b.nodes) - 1
    sinks = tuple(
        (i, rng.uniform(-1.0, 1.0, size=node.shape))
        for i, node in enumerate(b.nodes)
        if i not in used and i != last
    )
    return Program(tuple(b.floats), tuple(b.ints), tuple(b.steps), sinks)


# --- Comparing with jax.value_and_grad -----------------------------------------------------
# Both gradients are computed in one jitted program; XLA's backend optimisations do not
# change the arithmetic here and cost most of the compile time.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def relative_error(ours, reference) -> float:
    """The value's relative error and each gradient leaf's, relative to its own scale.

    Each leaf's scale is its largest reference entry, floored at 1e-3 of the largest entry
    of all leaves: a leaf whose gradient cancels to nearly zero has no scale of its own.
    """
    as_float64 = lambda leaf: np.asarray(leaf, np.float64)  # noqa: E731
    (value, grads), (ref_value, ref_grads) = jax.tree.map(as_float64, (ours, reference))
    errors = [abs(value - ref_value) / max(abs(ref_value), 1e-300)]
    leaves = list(zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads), strict=True))
    overall = max([np.max(np.abs(r), initial=0.0) for _, r in leaves], default=0.0)
    for a, r in leaves:
        scale = max(np.max(np.abs(r), initial=0.0), 1e-3 * overall, 1e-300)
        errors.append(np.max(np.abs(a - r), initial=0.0) / scale)
    return float(np.max(errors))  # NaN if any error is NaN


def check_program(program: Program, dtype) -> None:
    """Assert the engine's value and gradient equal JAX's on ``program`` in ``dtype``."""
    note(repr(program))  # hypothesis shows a failing program step by step
    floats = [jnp.asarray(v, dtype) for v in program.floats]
    ints = [jnp.asarray(v) for v in program.ints]

    def both(floats, ints):
        ours = graph.value_and_grad(program)(floats, ints)
        return ours, jax.value_and_grad(program)(floats, ints)

    ours, reference = jax.jit(both, compiler_options=_FAST_COMPILE)(floats, ints)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(reference)), program
    assert jax.tree.structure(ours) == jax.tree.structure(reference)
    error = relative_error(ours, reference)
    name = jnp.dtype(dtype).name
    LARGEST_ERROR[name] = max(LARGEST_ERROR.get(name, 0.0), error)
    assert error <= _TOLERANCE[dtype], f"{program}\nrelative error {error:.3g} in {name}"


# What the programs must exercise: the primitives the engine covers, as JAX names them.
REQUIRED_PRIMITIVES = frozenset(
    """
    add sub mul div neg max min abs sign exp exp2 log log1p expm1 tanh logistic sin cos sqrt
    rsqrt pow integer_pow square erf select_n clamp dot_general conv_general_dilated reduce_sum
    reduce_max reduce_min reduce_prod argmax argmin cumsum cumprod cummax cummin
    reduce_window_sum reduce_window_max reduce_window_min broadcast_in_dim reshape transpose
    squeeze concatenate stack split tile pad slice dynamic_slice dynamic_update_slice gather
    scatter-add scatter rev convert_element_type stop_gradient copy jit custom_jvp_call
    custom_vjp_call cond scan sinh cosh tan asin acos atanh erf_inv cbrt acosh lgamma erfc atan
    asinh floor round ceil rem atan2 sort top_k unstack
    """.split()  # noqa: SIM905
) | {primitives.remat_p.name}  # jax.checkpoint


def primitive_names(jaxpr: Jaxpr) -> set[str]:
    """The names of the primitives in ``jaxpr`` and in the jaxprs inside its equations."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for param in eqn.params.values():
            for inner in param if isinstance(param, (tuple, list)) else [param]:
                if isinstance(inner, (ClosedJaxpr, Jaxpr)):
                    names |= primitive_names(getattr(inner, "jaxpr", inner))
    return names


@pytest.mark.slow
def test_programs_cover_every_primitive():
    seen: set[str] = set()

    @settings(max_examples=150)
    @given(programs(max_steps=12))
    def collect(program):
        ints = [jnp.asarray(v) for v in program.ints]
        seen.update(primitive_names(jax.make_jaxpr(program)(list(program.floats), ints).jaxpr))

    collect()
    assert not REQUIRED_PRIMITIVES - seen, sorted(REQUIRED_PRIMITIVES - seen)


@pytest.fixture(scope="module", autouse=True)
def _report_largest_error():
    yield
    for name, error in sorted(LARGEST_ERROR.items()):
        print(f"\nrandom programs: largest relative error in {name}: {error:.3g}")


@pytest.mark.slow
def test_dynamic_slice_started_past_the_end():
    """A start past the end is clamped, so the slice ends at the end: so is the gradient.

    Found by the random programs: XLA on CPU miscompiles JAX's own jitted gradient of this
    function (the pooled cotangent lands one element too far, x[3] instead of x[2]: the
    start is left unclamped when the pooling gradient, written into zeros at that start, is
    added to another gradient). The reference is the closed form, which eager ``jax.grad``
    and finite differences agree with.
    """
    x = jnp.array([1.79459779, -0.75267419, -0.3066942, 1.31081038])
    noise = jnp.array([-0.09300422, -0.73191661, -0.19377403])

    def f(x, start):
        window = lax.dynamic_slice(x, [start], (3,)) + noise  # x[1:4] + noise
        pooled = lax.reduce_window(window, jnp.inf, lax.min, (3,), (2,), "VALID")
        return jnp.sum(jnp.sin(x)) + jnp.sum(pooled)  # the minimum is x[2] + noise[1]

    expected = jnp.cos(x).at[2].add(1.0)
    start = jnp.asarray(2, jnp.int32)
    np.testing.assert_allclose(jax.jit(graph.grad(f))(x, start), expected, rtol=1e-12)
    np.testing.assert_allclose(graph.grad(f)(x, start), expected, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(f)(x, start), expected, rtol=1e-12)


@settings(max_examples=10)
@given(programs())
def test_random_programs_float64_quick(program):
    check_program(program, jnp.float64)


@pytest.mark.slow
@settings(max_examples=50)
@given(programs())
def test_random_programs_float64(program):
    check_program(program, jnp.float64)


@pytest.mark.slow
@settings(max_examples=25)
@given(programs())
def test_random_programs_float32(program):
    check_program(program, jnp.float32)

"""Hand-written means hand-written: no module of ``fungrad/graph/`` may use JAX's own
differentiation (``jax.grad``, ``jax.vjp``, ``jax.jvp``, ``jax.linearize``,
``jax.linear_transpose``, ``jax.value_and_grad``, ``jax.jacfwd``/``jacrev``, ``jax.hessian``)
or its internal AD and transpose rules (``jax.interpreters.ad``, ``jax._src.ad_util``,
``jax._src.interpreters.ad``, ``primitive_transposes``, ``primitive_jvps``).

The check reads the source with ``ast``: every import, every dotted name (with import
aliases resolved, so ``import jax as j; j.grad`` and ``from jax import grad as g`` are
caught), and ``getattr``/``import_module`` calls with a constant name.
"""

import ast
import pathlib

import pytest

import fungrad.graph

GRAPH_DIR = pathlib.Path(fungrad.graph.__file__).parent

FORBIDDEN_FUNCTIONS = {
    "grad",
    "vjp",
    "jvp",
    "linearize",
    "linear_transpose",
    "value_and_grad",
    "jacfwd",
    "jacrev",
    "hessian",
}
FORBIDDEN_MODULES = ("jax.interpreters.ad", "jax._src.ad_util", "jax._src.interpreters.ad")
FORBIDDEN_ATTRIBUTES = {"primitive_transposes", "primitive_jvps"}


def _why_forbidden(name: str) -> str | None:
    """Why the fully qualified ``name`` is forbidden, or None."""
    for module in FORBIDDEN_MODULES:
        if name == module or name.startswith(module + "."):
            return f"JAX's internal AD module {module}"
    parts = name.split(".")
    if parts[0] == "jax" and FORBIDDEN_FUNCTIONS & set(parts[1:]):
        return "JAX's differentiation function " + name
    if FORBIDDEN_ATTRIBUTES & set(parts):
        return "a primitive's registered JVP or transpose rule"
    return None


def _aliases(tree: ast.AST) -> dict:
    """Local name -> fully qualified name, from every import in the module."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    root = alias.name.split(".")[0]
                    aliases[root] = root
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def _dotted(node: ast.AST, aliases: dict) -> str | None:
    """``a.b.c`` with ``a`` resolved through the imports, or None if not a plain chain."""
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(attributes)])


def _imported_names(node: ast.AST) -> list:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def _constant_name_lookups(node: ast.AST, aliases: dict) -> list:
    """Names looked up by string: ``getattr(jax, "grad")``, ``import_module("jax....")``."""
    if not isinstance(node, ast.Call) or not node.args:
        return []
    function = _dotted(node.func, aliases) or ""
    strings = [
        a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
    ]
    if function == "getattr" and len(node.args) >= 2 and strings:
        base = _dotted(node.args[0], aliases) or "?"
        return [f"{base}.{strings[0]}"]
    if function.split(".")[-1] in ("import_module", "__import__"):
        return strings[:1]
    return []


def forbidden_uses(source: str, filename: str = "<source>") -> list:
    """``(filename, line, name, why)`` for every forbidden use in ``source``."""
    tree = ast.parse(source, filename)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        names = _imported_names(node) + _constant_name_lookups(node, aliases)
        if isinstance(node, ast.Attribute):
            names.append(_dotted(node, aliases) or node.attr)
        elif isinstance(node, ast.Name) and node.id in aliases:
            names.append(aliases[node.id])
        for name in names:
            why = _why_forbidden(name)
            if why:
                found.append((filename, node.lineno, name, why))
    return found


def _graph_sources():
    return sorted(GRAPH_DIR.glob("**/*.py"))


def test_the_graph_package_has_modules_to_check():
    names = {path.name for path in _graph_sources()}
    assert {"__init__.py", "interpreter.py", "registry.py", "rules_elementwise.py"} <= names


@pytest.mark.parametrize("path", _graph_sources(), ids=lambda p: p.name)
def test_no_module_of_the_engine_uses_jax_differentiation(path):
    assert forbidden_uses(path.read_text(), str(path)) == []


@pytest.mark.parametrize(
    "source",
    [
        "import jax\njax.grad(f)",
        "import jax as j\nj.value_and_grad(f)(x)",
        "from jax import grad as g",
        "from jax import vjp",
        "from jax import jvp, numpy",
        "import jax\ny = jax.linearize(f, x)",
        "import jax\njax.linear_transpose(f, x)",
        "import jax\njax.jacfwd(f)",
        "import jax\njax.jacrev(f)",
        "import jax\njax.hessian(f)",
        "import jax.interpreters.ad",
        "import jax.interpreters.ad as ad",
        "from jax.interpreters import ad",
        "from jax._src.interpreters import ad",
        "from jax._src.interpreters.ad import primitive_transposes",
        "from jax._src import ad_util",
        "import jax._src.ad_util as u",
        "def f():\n    from jax import grad\n    return grad",
        "rules = something.primitive_transposes[p]",
        "rules = something.primitive_jvps[p]",
        "import jax\njax._src.api.grad(f)",
        "import jax\nfn = getattr(jax, 'vjp')",
        "import importlib\nad = importlib.import_module('jax.interpreters.ad')",
    ],
)
def test_the_check_catches_every_form(source):
    assert forbidden_uses(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "import jax\njax.make_jaxpr(f)(x)",
        "import jax.numpy as jnp\njnp.gradient(x)",
        "from jax.extend.core import primitives\nprimitives.custom_jvp_call_p",
        "from fungrad.graph import grad\ngrad(f)",
        "from . import interpreter\ninterpreter.vjp_jaxpr",
        "import jax\njax.custom_jvp",
        "params['jvp_jaxpr_fun']",
    ],
)
def test_the_check_allows_recording_and_the_engines_own_names(source):
    assert forbidden_uses(source) == []

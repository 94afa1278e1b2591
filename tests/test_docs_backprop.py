"""The code on ``docs/backprop.md`` runs, and its assertions hold."""

import pathlib
import re

import jax
import jax.numpy as jnp
import pytest

import fungrad

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "backprop.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_page_has_examples():
    blocks = _python_blocks(PAGE.read_text())
    assert len(blocks) >= 5
    assert all("assert" in block for block in blocks[1:])


@pytest.mark.slow
def test_page_examples_run():
    namespace: dict = {"__name__": "docs_backprop"}
    for block in _python_blocks(PAGE.read_text()):
        exec(compile(block, str(PAGE), "exec"), namespace)
    assert namespace["jacobian"].shape == (2, 3)


def test_custom_vjp_apply_has_no_forward_mode():
    """The page says forward mode is not defined for ``backprop.apply``; hold it to that."""
    params = [{"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}]
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(lambda x: fungrad.backprop.apply(params, x), (jnp.ones(3),), (jnp.ones(3),))

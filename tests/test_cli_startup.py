"""The command line starts fast: help and version never import JAX, and the names the parser
lists without importing JAX are the registries' names."""

import subprocess
import sys

import pytest

from fungrad import activations, losses, optim
from fungrad.cli import parser

PROBE = """
import sys
from fungrad.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("jax imported" if "jax" in sys.modules else "no jax")
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["train", "--help"], ["--version"], ["check", "--help"]]
)
def test_help_and_version_do_not_import_jax(argv):
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.stdout.strip().endswith("no jax"), result.stdout + result.stderr


def test_version_names_the_package(capsys):
    with pytest.raises(SystemExit):
        parser.build_parser().parse_args(["--version"])
    assert capsys.readouterr().out.startswith("fungrad ")


def test_the_parser_lists_the_registries_names():
    # The built-in names come first in each registry; other tests may register more after them.
    names = activations.activation_names()
    assert names[: len(parser.ACTIVATIONS)] == parser.ACTIVATIONS
    assert losses.loss_names()[: len(parser.LOSSES)] == parser.LOSSES
    assert optim.NAMES == parser.OPTIMIZERS

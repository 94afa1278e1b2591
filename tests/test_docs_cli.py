"""``docs/cli.md`` matches the command line: its options exist, its commands and specs parse."""

import pathlib
import re
import shlex

import pytest

from fungrad import stopping
from fungrad.cli.parser import build_parser

PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "cli.md"
TEXT = PAGE.read_text()
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _help_options(command: str) -> set[str]:
    """The options ``fungrad COMMAND --help`` prints."""
    return set(OPTION.findall(build_parser().subcommands[command].format_help()))


def _section(title: str) -> str:
    start = TEXT.index(title)
    end = TEXT.find("\n#", start + len(title))
    return TEXT[start : None if end < 0 else end]


def _commands() -> list[list[str]]:
    """The ``fungrad ...`` lines of the page's bash blocks, as argument lists."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", TEXT, flags=re.DOTALL | re.MULTILINE):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["fungrad"]:
                lines.append(words[1:])
    return lines


def test_every_option_on_the_page_is_an_option_of_a_command():
    known = set().union(*(_help_options(c) for c in ("train", "predict", "evaluate", "check")))
    unknown = set(OPTION.findall(TEXT)) - known
    assert not unknown, f"docs/cli.md names options no command has: {sorted(unknown)}"


def test_the_options_table_lists_every_train_option():
    listed = set(OPTION.findall(_section("### Options")))
    train = _help_options("train") - {"--help"}
    assert listed == train, (
        f"missing from the table: {sorted(train - listed)}; "
        f"not options of fungrad train: {sorted(listed - train)}"
    )


@pytest.mark.parametrize("argv", _commands(), ids=shlex.join)
def test_the_page_commands_parse(argv):
    if "--help" in argv:
        assert argv[0] in build_parser().subcommands or argv == ["--help"]
        return
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]


def test_the_page_stop_specs_parse():
    kinds = "max_epochs|target|no_improvement|plateau|grad_norm_below"
    specs = set(re.findall(rf"`((?:{kinds}):[^`A-Z]*)`", TEXT))
    specs |= set(re.findall(r"--stop ([^\s`]+)", TEXT)) - {"SPEC"}
    assert "no_improvement:val_loss:5" in specs
    for spec in specs:
        assert stopping.parse(spec).name
    assert stopping.parse("target:val_accuracy:0.97").name == "target(val_accuracy >= 0.97)"

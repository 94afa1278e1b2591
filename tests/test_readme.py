"""The README's first look runs as written, and its two commands are the ones CI runs."""

import contextlib
import io
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_first_look_runs_and_trains_the_digits():
    (code,) = re.findall(r"```python\n(.*?)```", README, re.S)
    printed = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["result"].epochs_run >= 1
    test_accuracy = float(re.search(r"'accuracy': ([0-9.]+)", printed.getvalue()).group(1))
    assert test_accuracy >= 0.95


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) == 2
    assert "fungrad train" in commands[0]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()

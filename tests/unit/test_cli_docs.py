"""Every command and every option says what it is for (the help is the first manual)."""

import pytest
from click.testing import CliRunner

from crossmatch.cli import main

COMMANDS = sorted(main.commands)


def test_the_pipeline_commands_exist():
    assert {"sample", "validate", "ingest", "resolve", "detect", "evaluate"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_and_options_documented(name):
    cmd = main.commands[name]
    assert cmd.help and len(cmd.help.strip()) > 20, f"{name}: no docstring"
    for p in cmd.params:
        if p.param_type_name == "option":
            assert p.help, f"{name} {p.opts}: option without help"
    out = CliRunner().invoke(main, [name, "--help"])
    assert out.exit_code == 0


def test_missing_warehouse_names_the_next_step(tmp_path):
    out = CliRunner().invoke(main, ["detect", "--warehouse", str(tmp_path / "none.duckdb")])
    assert out.exit_code == 5
    assert "run `crossmatch ingest` and `crossmatch resolve` first" in out.output

"""Every command is discoverable: listed by `memo --help`, with examples, and documented."""

from pathlib import Path

import click
from click.testing import CliRunner

from memocli.cli import cli

DOCS = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[1] / "docs").glob("*.md"))


def walk(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from walk(command, (*prefix, name))


def test_every_command_has_help_with_examples_and_docs():
    top = CliRunner().invoke(cli, ["--help"]).output
    commands = list(walk(cli))
    assert {"train", "evaluate", "lr-find", "score", "export", "explain", "cache"} <= {
        names[0] for names, _ in commands}
    for names, command in commands:
        if len(names) == 1:
            assert names[0] in top
        result = CliRunner().invoke(cli, [*names, "--help"])
        assert result.exit_code == 0, names
        assert command.get_short_help_str(), names
        if not isinstance(command, click.Group):
            assert "Example" in result.output, names
        assert f"memo {' '.join(names)}" in DOCS, names


def test_version_and_unknown_command():
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output.startswith("memo, version ")
    result = runner.invoke(cli, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output

"""Every command is discoverable: listed by `memo --help`, with examples, and documented."""

import re
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


def test_help_points_at_no_file_the_installed_package_lacks():
    for names, _ in [((), cli), *walk(cli)]:
        text = CliRunner().invoke(cli, [*names, "--help"]).output
        assert "docs/" not in text and "README" not in text, names  # not in the wheel


def test_first_examples_need_no_file_a_user_lacks():
    for command in ("train", "lr-find"):
        text = CliRunner().invoke(cli, [command, "--help"]).output
        first = text.split("Example")[1].splitlines()[1]
        assert ".pt" not in first and "--backbone-weights" not in first, first


def test_readme_says_where_make_demo_writes():
    repo = Path(__file__).resolve().parents[1]
    recipe = (repo / "Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0]
    outputs = set(re.findall(r"(demo-out/[\w.]+)", recipe)) - {"demo-out/memo.db"}
    readme_line = next(line for line in (repo / "README.md").read_text().splitlines()
                       if line.startswith("make demo"))
    readme_demo = readme_line + "\n" + (repo / "README.md").read_text().split(
        readme_line)[1].split("make test")[0]
    assert "demo-out/" in readme_demo
    assert {Path(o).name for o in outputs} <= set(re.findall(r"[\w-]+\.\w+", readme_demo))


def test_readme_names_the_distribution_and_the_command():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "pip install ." in readme and "**`memocli`**" in readme and "**`memo`**" in readme

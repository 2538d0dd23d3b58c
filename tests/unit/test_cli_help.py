"""Every ``beacon`` command answers ``--help`` with its usage (argparse formats help text lazily, so a stray
``%`` in a help string only fails when someone asks for it)."""

from __future__ import annotations

import argparse

import pytest

from app.cli import build_parser


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += commands(child, (*prefix, name))
    return found


@pytest.mark.parametrize("command", commands(build_parser()), ids=lambda c: " ".join(c) or "beacon")
def test_help_is_printed(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """``beacon … --help`` prints a usage line and exits 0."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert 0 == exited.value.code
    assert capsys.readouterr().out.startswith("usage: beacon")

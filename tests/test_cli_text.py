"""What users read: ``sciml --version`` and every ``--help`` text, free of markup, escapes and jargon."""

import argparse
import re
import subprocess
import sys

import pytest

import sciml
from sciml.cli import build_parser

# reStructuredText/Markdown markup, argparse escapes that leaked, and project-internal wording
FORBIDDEN = [r"``", r":class:", r":func:", r":mod:", r"%%", r"\bissue\s*\d", r"\btargets?\b", r"\bTODO\b"]


def _all_help_texts() -> dict[str, str]:
    texts = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        texts[name] = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")

    walk(build_parser(), "sciml")
    return texts


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "sciml.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"sciml {sciml.__version__}"


@pytest.mark.parametrize("command, text", sorted(_all_help_texts().items()))
def test_help_text_is_plain(command, text):
    for pattern in FORBIDDEN:
        match = re.search(pattern, text, flags=re.IGNORECASE)
        assert match is None, f"`{command} --help` shows {match.group(0)!r}:\n{text}"

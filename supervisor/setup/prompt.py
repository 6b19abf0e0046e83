"""How the wizard talks to a person: the ``Prompt`` interface and the terminal's version.

The wizard only calls ``Prompt`` methods, so its flow is tested with a scripted prompt and
the terminal front end stays thin. ``TerminalPrompt`` reads lines from standard input and
secrets with ``getpass`` (from the terminal, never echoed, never printed back), and
writes to standard output. Invalid answers to ``choose``/``confirm`` are asked again here;
answers that need checking (addresses, ports) are checked and re-asked by the wizard.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Sequence
from typing import Protocol, TextIO

from supervisor.setup.answers import parse_yes_no, pick


class WizardAborted(Exception):
    """Raised when the person's input ends (end of file) before the wizard finished."""


class Prompt(Protocol):
    """The wizard's questions and messages."""

    def ask(self, text: str, default: str = "") -> str:
        """Ask for a line; an empty answer returns ``default``."""
        ...

    def ask_secret(self, text: str) -> str:
        """Ask for a secret without showing it; may return ""."""
        ...

    def choose(self, text: str, choices: Sequence[str], default: str) -> str:
        """Ask for one of ``choices``; an empty answer returns ``default``."""
        ...

    def confirm(self, text: str, default: bool) -> bool:
        """Ask a yes/no question."""
        ...

    def say(self, text: str) -> None:
        """Show ``text`` (one or more lines)."""
        ...


class TerminalPrompt:
    """``Prompt`` on a terminal: ``input``-style lines, ``getpass`` for secrets."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout

    def _line(self, text: str) -> str:
        self._out.write(text)
        self._out.flush()
        line = self._in.readline()
        if not line:
            raise WizardAborted("the input ended before the wizard finished")
        return line.rstrip("\r\n")

    def ask(self, text: str, default: str = "") -> str:
        shown = f" [{default}]" if default else ""
        answer = self._line(f"{text}{shown}: ").strip()
        return answer or default

    def ask_secret(self, text: str) -> str:
        try:
            return getpass.getpass(f"{text}: ", stream=self._out)
        except EOFError:
            raise WizardAborted("the input ended before the wizard finished") from None

    def choose(self, text: str, choices: Sequence[str], default: str) -> str:
        while True:
            answer = self._line(f"{text} [{'/'.join(choices)}] ({default}): ")
            chosen = pick(answer, choices, default)
            if chosen is not None:
                return chosen
            self.say(f"Please answer one of: {', '.join(choices)}.")

    def confirm(self, text: str, default: bool) -> bool:
        while True:
            answer = self._line(f"{text} [{'Y/n' if default else 'y/N'}]: ")
            value = parse_yes_no(answer, default)
            if value is not None:
                return value
            self.say("Please answer y or n.")

    def say(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

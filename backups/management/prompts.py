"""Asking the person at the terminal to confirm, or refusing when nobody can answer.

A command that changes or removes data asks first, unless --yes; without a terminal it refuses
before any work, so that cron never hangs on a question. It must not decide what needs asking:
the command does.
"""

from __future__ import annotations

import sys

from django.core.management.base import OutputWrapper

from backups.management.arguments import USAGE, fail


def can_confirm(options: dict, what: str) -> None:
    """Refuses before any work when a confirmation is needed and nobody can give it."""
    if not options.get("yes") and not sys.stdin.isatty():
        raise fail(
            f"{what} needs confirmation and there is no terminal to ask on: "
            "pass --yes to go ahead without a prompt",
            USAGE,
        )


def confirm(err: OutputWrapper, options: dict, *, question: str, expected: str, what: str) -> None:
    """Asks on ``err`` (the terminal), unless --yes; refuses when there is nobody to ask."""
    can_confirm(options, what)
    if options.get("yes"):
        return
    err.write(question, ending="")
    err.flush()
    answer = sys.stdin.readline().strip()
    if answer != expected:
        raise fail(f"not confirmed ({answer or 'no answer'}): nothing was changed")

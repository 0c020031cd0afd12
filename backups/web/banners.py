"""Banners about work under way ("Backup started", "Verifying..."), which must not outlive it.

They carry the tag below; base.html marks them data-while-running and console.js removes them
once no live part of the page shows a run any more, so a page never says "Verifying" beside
the verification's result.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest

WHILE_RUNNING = "while-running"


def under_way(request: HttpRequest, text: str) -> None:
    messages.info(request, text, extra_tags=WHILE_RUNNING)

"""The pace of waiting for work that runs elsewhere (a snapshot, then its finalization): how
long to sleep between two looks. It knows nothing of what is waited for; the caller looks,
and asks it to wait when the answer is "not yet". Where the other side can hold the question
until the answer changes (Elasticsearch's cluster health, for restored shards), that is
better still, and no Poller is needed.

The first waits are short and each doubles, up to the configured interval
(A4C_POLL_SECONDS): a snapshot done in 80 ms is seen done within tens of milliseconds, not
after a whole interval, while a long one is still asked no more often than the setting says.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FIRST_WAIT_SECONDS = 0.05


class Poller:
    """The waits of one wait-until-done loop; a new loop takes a new Poller."""

    def __init__(
        self,
        interval: float,
        *,
        first: float = FIRST_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.interval = interval
        self.next_wait = min(first, interval)
        self._clock, self._sleep = clock, sleep
        self.started = clock()

    @property
    def elapsed(self) -> float:
        """Seconds since the loop began, by the clock it was given."""
        return self._clock() - self.started

    def wait(self) -> float:
        """Sleeps before the next look; returns the seconds slept."""
        seconds = self.next_wait
        self._sleep(seconds)
        self.next_wait = min(seconds * 2, self.interval)
        return seconds

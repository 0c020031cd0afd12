"""backups/polling.py: the pace of looking at work that runs elsewhere, on a fake clock."""

import pytest

from backups.polling import Poller


class FakeTime:
    """A clock that moves only when the poller sleeps, and the sleeps it was asked for."""

    def __init__(self):
        self.now = 100.0
        self.slept = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def poller(interval: float, fake: FakeTime, **kwargs) -> Poller:
    return Poller(interval, clock=fake.clock, sleep=fake.sleep, **kwargs)


def test_the_first_waits_are_short_and_double_up_to_the_configured_interval():
    fake = FakeTime()
    waiting = poller(0.5, fake)

    returned = [waiting.wait() for _ in range(7)]

    assert fake.slept == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.5])
    assert returned == fake.slept


def test_an_interval_shorter_than_the_first_wait_is_the_pace_from_the_start():
    fake = FakeTime()
    waiting = poller(0.02, fake)

    for _ in range(3):
        waiting.wait()

    assert fake.slept == [0.02, 0.02, 0.02]


def test_the_first_wait_can_be_chosen():
    fake = FakeTime()
    waiting = poller(1.0, fake, first=0.3)

    for _ in range(3):
        waiting.wait()

    assert fake.slept == pytest.approx([0.3, 0.6, 1.0])


def test_elapsed_counts_from_the_start_of_the_loop_by_the_given_clock():
    fake = FakeTime()
    waiting = poller(0.5, fake)
    assert waiting.elapsed == 0

    for _ in range(5):
        waiting.wait()

    assert waiting.elapsed == pytest.approx(0.05 + 0.1 + 0.2 + 0.4 + 0.5)


def test_each_loop_starts_again_with_a_short_wait():
    fake = FakeTime()
    for _ in range(4):
        poller(0.5, fake).wait()

    assert fake.slept == pytest.approx([0.05] * 4)

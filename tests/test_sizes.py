"""backups/sizes.py: sizes as people read and write them, in one place."""

import pytest

from backups.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1050040319, "1001.4 MiB"),
        (2**30 - 1, "1.0 GiB"),  # 1023.95 MiB and up is read in the next unit
        (5 * 2**40, "5.0 TiB"),
        (None, ""),
    ],
)
def test_a_size_is_shown_in_the_largest_unit_below_1024(count, shown):
    assert format_size(count) == shown


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("500K", 500 * 1024),
        ("50M", 50 * 2**20),
        ("1.5G", 3 * 2**29),
        ("2TiB", 2 * 2**40),
        ("4096", 4096),
        ("10mb", 10 * 2**20),
    ],
)
def test_a_size_is_read_in_binary_units(text, count):
    assert parse_size(text) == count


@pytest.mark.parametrize("text", ["", "fast", "-5M", "nan", "inf", "1.5X"])
def test_what_is_not_a_size_reads_as_none(text):
    assert parse_size(text) is None

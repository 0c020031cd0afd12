"""Backup names follow Elasticsearch's snapshot rules and are safe as file names."""

import pytest

from backups.errors import InvalidInput
from backups.operations import validate_backup_name

BAD = {
    "": "required",
    "Nightly": "lowercase",
    "a b": "space",
    "a/b": "/",
    "../etc": "/",
    "/etc/passwd": "/",
    "a\\b": "\\",
    "a*": "*",
    "a?": "?",
    'a"b': '"',
    "a<b": "<",
    "a>b": ">",
    "a|b": "|",
    "a,b": ",",
    "a#b": "#",
    "a:b": ":",
    "_hidden": "start with",
    "-dash": "start with",
    ".dot": "start with",
    "a\0b": "control",
    "a\nb": "control",
    "x" * 201: "limit",
    "café": "ASCII",
    "ｂackup": "ASCII",
    "a$(rm -rf /)": "space",
    "a;reboot": "ASCII",
    "a`id`": "ASCII",
    "a&b": "ASCII",
}


@pytest.mark.parametrize("name,why", BAD.items())
def test_it_refuses_a_bad_name_and_says_why(name, why):
    with pytest.raises(InvalidInput) as refused:
        validate_backup_name(name)
    assert why.lower() in str(refused.value).lower() or why in str(refused.value)


@pytest.mark.parametrize("name", ["nightly-2026-11-23", "a", "backup_1.0", "v1+build", "x" * 200])
def test_it_accepts_a_good_name(name):
    assert validate_backup_name(name) == name

"""backups.objectstore against the real S3 server (S3Proxy): objects, streams, multipart
uploads begun, resumed and abandoned, and settings read into a bucket or refused."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from backups import objectstore
from backups.errors import ConfigError, OffsiteError, OffsiteUnreachable
from backups.objectstore import PART_SIZE

MIB = 1 << 20


def test_it_puts_lists_gets_and_deletes_objects(offsite):
    offsite.put_bytes("set-1/COPY.json", b'{"done": true}\n', {"a4c-sha256": "x"})
    offsite.put_bytes("set-1/segments/000000.age", b"first")
    offsite.put_bytes("set-2/COPY.json", b"{}")

    assert [o.key for o in offsite.list("set-1/")] == [
        "set-1/COPY.json",
        "set-1/segments/000000.age",
    ]
    assert offsite.get_bytes("set-1/segments/000000.age") == b"first"
    head = offsite.head("set-1/COPY.json")
    assert head.size == 15 and head.metadata == {"a4c-sha256": "x"}
    assert offsite.head("set-1/nothing") is None

    offsite.delete("set-2/COPY.json")
    assert offsite.head("set-2/COPY.json") is None
    assert offsite.delete_prefix("set-1/") == 2
    assert list(offsite.list()) == []


def test_keys_live_under_the_prefix_of_the_url(offsite):
    offsite.put_bytes("a/b", b"1")
    raw = offsite.client.list_objects_v2(Bucket=offsite.name)
    # (S3Proxy's filesystem backend also lists its folders, as "a4c/" and "a4c/a/".)
    keys = [item["Key"] for item in raw["Contents"] if not item["Key"].endswith("/")]
    assert keys == ["a4c/a/b"]
    assert offsite.where("a/b") == f"s3://{offsite.name}/a4c/a/b"


def test_a_stream_goes_up_in_parts_and_comes_back_whole(offsite):
    data = os.urandom(2 * PART_SIZE + 3 * MIB)
    sent = []
    result = offsite.put_stream(
        "big.age", io.BytesIO(data), {"a4c-plain-size": str(len(data))}, progress=sent.append
    )
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert sent == [PART_SIZE, 2 * PART_SIZE, len(data)]
    # A multipart object's ETag is "<md5 of the parts' md5s>-<parts>".
    assert offsite.head("big.age").etag.strip('"').endswith("-3")
    assert offsite.head("big.age").metadata == {"a4c-plain-size": str(len(data))}
    with offsite.open("big.age") as body:
        assert hashlib.sha256(body.read()).hexdigest() == result.sha256
    assert offsite.uploads() == []


def test_an_empty_stream_is_an_empty_object(offsite):
    result = offsite.put_stream("empty", io.BytesIO(b""))
    assert result.size == 0 and offsite.head("empty").size == 0


def test_an_upload_begun_before_is_resumed_sending_only_the_missing_parts(offsite):
    data = os.urandom(3 * 5 * MIB)
    part = 5 * MIB
    upload = offsite.start_upload("resumed.age", {"a4c-sha256": "abc"})
    offsite.upload_part(upload, 1, data[:part])
    # ... the process dies here; a new one finds the upload and what it holds.
    (found,) = offsite.uploads()
    assert (found.key, found.upload_id) == ("resumed.age", upload.upload_id)
    assert [(p.number, p.size) for p in offsite.parts(found)] == [(1, part)]

    sent_parts = []
    real_upload_part = offsite.upload_part

    def counting(upload, number, chunk):
        sent_parts.append(number)
        return real_upload_part(upload, number, chunk)

    offsite.upload_part = counting
    result = offsite.put_stream("resumed.age", io.BytesIO(data), part_size=part, resume=found)

    assert sent_parts == [2, 3], "the part the server held was not sent again"
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert offsite.get_bytes("resumed.age") == data
    assert offsite.head("resumed.age").metadata == {"a4c-sha256": "abc"}
    assert offsite.uploads() == []


def test_an_upload_that_fails_is_abandoned_and_leaves_no_object(offsite):
    class Failing(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 6:
                raise OSError("the disk went away")
            return b"x" * min(size, MIB)

    with pytest.raises(OSError, match="disk went away"):
        offsite.put_stream("broken.age", Failing())
    assert offsite.head("broken.age") is None
    assert offsite.uploads() == []


def test_uploads_can_be_listed_and_abandoned(offsite):
    first = offsite.start_upload("x/one")
    offsite.start_upload("y/two")
    assert [u.key for u in offsite.uploads("x/")] == ["x/one"]
    offsite.abort_upload(first)
    offsite.abort_upload(first)  # twice is harmless
    assert [u.key for u in offsite.uploads()] == ["y/two"]
    offsite.delete_prefix("y/")
    assert offsite.uploads() == []


def test_a_wrong_secret_is_refused_naming_the_settings(offsite, settings):
    settings.A4C_OFFSITE_SECRET_KEY = "not-the-secret"
    wrong = objectstore.configured()
    with pytest.raises(OffsiteError, match="A4C_OFFSITE_SECRET_KEY"):
        wrong.put_bytes("k", b"v")
    assert offsite.head("k") is None


def test_a_missing_bucket_is_named(offsite, settings):
    settings.A4C_OFFSITE_URL = "s3://a4c-no-such-bucket-here/x"
    with pytest.raises(OffsiteError, match="a4c-no-such-bucket-here does not exist"):
        objectstore.configured().check_bucket()


def test_a_server_that_does_not_answer_is_worth_a_retry(offsite, settings):
    settings.A4C_OFFSITE_ENDPOINT_URL = "http://127.0.0.1:9"  # discard: nothing listens
    with pytest.raises(OffsiteUnreachable) as raised:
        objectstore.configured().check_bucket()
    assert raised.value.retryable
    assert "A4C_OFFSITE_ENDPOINT_URL" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("https://bucket/prefix", "is not an s3:// URL"),
        ("s3://", "is not an s3:// URL"),
        ("s3://Upper_Case/x", "not a valid bucket name"),
        ("s3://bucket/a//b", "empty, '.' or '..' part"),
        ("s3://bucket/../b", "empty, '.' or '..' part"),
    ],
)
def test_a_malformed_url_is_refused_saying_how_to_write_it(url, complaint):
    with pytest.raises(ConfigError, match="A4C_OFFSITE_URL") as raised:
        objectstore.parse_offsite_url(url)
    assert complaint in str(raised.value)


def test_a_url_gives_the_bucket_and_prefix():
    assert objectstore.parse_offsite_url("s3://acme-backups/a4c/prod/") == (
        objectstore.OffsiteLocation("acme-backups", "a4c/prod")
    )
    assert objectstore.parse_offsite_url("s3://acme-backups").prefix == ""


def test_credentials_come_from_files_when_named(tmp_path):
    (tmp_path / "access").write_text("AKIAEXAMPLE\n")
    (tmp_path / "secret").write_text("s3cr3t\nignored\n")
    config = objectstore.offsite_config(
        {
            "A4C_OFFSITE_URL": "s3://b-1/p",
            "A4C_OFFSITE_ACCESS_KEY_FILE": str(tmp_path / "access"),
            "A4C_OFFSITE_SECRET_KEY_FILE": str(tmp_path / "secret"),
            "A4C_OFFSITE_ACCESS_KEY": "overridden",
        }
    )
    assert (config.access_key, config.secret_key) == ("AKIAEXAMPLE", "s3cr3t")
    assert "s3cr3t" not in repr(config)


def test_half_a_key_pair_is_refused():
    with pytest.raises(ConfigError, match="go together"):
        objectstore.offsite_config({"A4C_OFFSITE_URL": "s3://b-1/p", "A4C_OFFSITE_ACCESS_KEY": "a"})


def test_no_url_means_no_bucket():
    assert objectstore.offsite_config({"A4C_OFFSITE_URL": ""}) is None

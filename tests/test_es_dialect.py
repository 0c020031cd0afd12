"""The per-version rules of backups/elastic/versions.py, without a server: which versions are
refused, which snapshots a cluster can read, and how requests and answers are reshaped.
tests/test_es_versions.py runs the same rules against real 6.8, 7.17, 8.19 and 9.2 servers."""

from __future__ import annotations

import pytest

from backups.elastic import versions
from backups.elastic.versions import Dialect, Version, dialect_for
from backups.errors import UnsupportedElasticsearch


@pytest.mark.parametrize("found", ["5.6.16", "2.4.6", "1.7.5", "6.6.2", "7.10.2", "8.18.0"])
def test_it_refuses_an_old_or_untested_version_naming_it_and_the_supported_ones(found):
    with pytest.raises(UnsupportedElasticsearch) as refused:
        dialect_for([found])

    assert f"Elasticsearch {found} answered" in str(refused.value)
    assert versions.SUPPORTED_TEXT in str(refused.value)
    assert "Nothing was changed" in str(refused.value)


def test_it_refuses_a_newer_version_than_it_was_tested_with():
    with pytest.raises(UnsupportedElasticsearch) as refused:
        dialect_for(["9.3.0"])

    assert "has not been tested" in str(refused.value)


def test_a_cluster_in_the_middle_of_an_upgrade_is_spoken_to_as_its_oldest_node():
    assert dialect_for(["7.17.29", "6.8.23", "7.17.29"]).version == Version(6, 8, 23)


def test_a_mixed_cluster_with_one_unsupported_node_is_refused():
    with pytest.raises(UnsupportedElasticsearch, match="5.6.16"):
        dialect_for(["6.8.23", "5.6.16"])


@pytest.mark.parametrize("found", versions.TESTED)
def test_every_tested_version_is_supported(found):
    assert str(dialect_for([found]).version) == found


def test_a_version_it_cannot_read_is_refused_clearly():
    with pytest.raises(UnsupportedElasticsearch, match="cannot read"):
        dialect_for(["banana"])


@pytest.mark.parametrize(
    ("cluster", "taken", "refused_because"),
    [
        ("7.17.29", "6.8.23", None),
        ("6.8.23", "6.8.23", None),
        ("9.2.0", "8.19.8", None),
        ("6.8.23", "7.17.29", "newer than this cluster's 6.8.23"),
        ("8.19.8", "9.2.0", "newer than this cluster's 8.19.8"),
        ("8.19.8", "6.8.23", "reads snapshots of 7.x and 8.x only"),
        ("8.19.8", "", None),  # unknown: Elasticsearch itself judges
    ],
)
def test_it_knows_which_snapshots_a_cluster_can_restore(cluster, taken, refused_because):
    why = Dialect(Version.parse(cluster)).can_restore(taken)

    if refused_because is None:
        assert why is None
    else:
        assert refused_because in why


def test_6x_and_7x_get_plain_json_and_8x_keeps_the_compatibility_media_type():
    sent = {
        "accept": "application/vnd.elasticsearch+json; compatible-with=8",
        "content-type": "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
        "authorization": "ApiKey abc",
    }

    for old in ("6.8.23", "7.17.29"):
        assert Dialect(Version.parse(old)).request_headers(sent) == {
            "accept": "application/json",
            "content-type": "application/x-ndjson",
            "authorization": "ApiKey abc",
        }
    assert Dialect(Version.parse("8.19.8")).request_headers(sent) == sent


def test_6x_mappings_and_documents_carry_the_doc_type_and_read_back_without_it():
    six, eight = Dialect(Version(6, 8, 23)), Dialect(Version(8, 19, 8))
    mapping = {"dynamic": "strict", "properties": {"id": {"type": "keyword"}}}

    assert six.create_mappings(mapping) == {"_doc": mapping}
    assert eight.create_mappings(mapping) == mapping
    assert six.bulk_action("a", "1") == {"index": {"_index": "a", "_id": "1", "_type": "_doc"}}
    assert eight.bulk_action("a", "1") == {"index": {"_index": "a", "_id": "1"}}
    assert six.typeless_mappings({"_doc": mapping}) == mapping
    assert eight.typeless_mappings(mapping) == mapping


def test_hit_totals_and_snapshot_bytes_are_read_in_either_shape():
    assert versions.total_hits({"total": 12}) == 12
    assert versions.total_hits({"total": {"value": 12, "relation": "eq"}}) == 12
    six = {"incremental": {"size_in_bytes": 90}, "processed_size_in_bytes": 40}
    seven = {"incremental": {"size_in_bytes": 90}, "processed": {"size_in_bytes": 40}}
    assert versions.snapshot_bytes(six) == versions.snapshot_bytes(seven) == (40, 90)

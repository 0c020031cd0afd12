"""The real services the product stands on: Elasticsearch, its repository, Redis and a worker."""

import uuid

import pytest

from backups import tasks
from backups.elastic import client as elastic
from backups.errors import ConfigError


def test_elasticsearch_answers_with_its_product_header_and_a_usable_health(es_cluster):
    info = es_cluster.info()

    assert info.product == "Elasticsearch"
    assert info.status in ("green", "yellow")
    assert info.version.split(".")[0] in ("8", "9")


def test_a_snapshot_repository_registers_under_path_repo_and_verifies(es_cluster, es_path_repo):
    name = f"a4c-test-{uuid.uuid4().hex[:8]}"
    location = str(es_path_repo / name)
    try:
        es_cluster.ensure_repository(name, location)
        es_cluster.ensure_repository(name, location)  # a second call finds it registered

        assert es_cluster.verify_repository(name)
        assert (
            es_cluster.client.snapshot.get_repository(name=name)[name]["settings"]["location"]
            == location
        )
    finally:
        es_cluster.delete_repository(name)


def test_a_repository_outside_path_repo_gets_a_message_naming_the_setting(es_cluster):
    with pytest.raises(elastic.ElasticError) as refused:
        es_cluster.ensure_repository("a4c-test-outside", "/definitely/not/in/path/repo")

    assert "A4C_ES_REPOSITORY_PATH" in str(refused.value) and "path.repo" in str(refused.value)


def test_the_old_transport_port_is_refused_before_anything_connects():
    with pytest.raises(ConfigError, match="9300.*REST port"):
        elastic.check_urls(
            ["http://localhost:9300"], "elasticsearch.addresses in config/config.yml"
        )


@pytest.mark.django_db(transaction=True)
def test_a_task_goes_through_redis_to_a_worker_process_and_back(start_worker):
    start_worker()

    result = tasks.ping.delay("hello")

    assert result.get(timeout=30) == "pong:hello"

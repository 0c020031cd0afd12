"""The real services the product stands on: Elasticsearch, its repository, Redis and a worker."""

import contextlib
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

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


# --- scripts/services.sh remembers a stack; scripts/test.sh stops what it started ----------

PROJECT = Path(__file__).resolve().parent.parent
SCRIPTS = PROJECT / "scripts"
# The settings that would point the scripts elsewhere than the test says.
STACK_VARIABLES = ("A4C_VAR_DIR", "A4C_ES_URLS", "CELERY_BROKER_URL", "A4C_ES_REPOSITORY_PATH")


def scripts_env(**given) -> dict[str, str]:
    """This process's environment without any stack setting, plus ``given``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in STACK_VARIABLES and not k.endswith("_PORT") and k != "A4C_ES_VERSION"
    }
    return {**env, **{k: str(v) for k, v in given.items()}}


def bash(command: str, env: dict[str, str], timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def exited(pid: int) -> bool:
    """Gone, or a zombie: exited, and waiting only for whoever reaps orphans here."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def var_dir(tmp_path):
    """A var dir of a stack of its own; whatever Redis the test left running there is stopped."""
    folder = tmp_path / "var"
    yield folder
    pid_file = folder / "run" / "redis.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)


def test_a_stack_started_on_other_ports_is_stopped_by_its_var_dir_alone(var_dir):
    port = free_port()
    started = bash(
        f"bash {SCRIPTS}/services.sh start redis",
        scripts_env(A4C_VAR_DIR=var_dir, A4C_REDIS_PORT=port),
    )
    assert started.returncode == 0, started.stdout + started.stderr
    pid = int((var_dir / "run" / "redis.pid").read_text().strip())
    remembered = (var_dir / "stack.env").read_text()
    assert f"A4C_REDIS_PORT={port}\n" in remembered and f"A4C_VAR_DIR={var_dir}\n" in remembered

    status = bash(f"bash {SCRIPTS}/services.sh status redis", scripts_env(A4C_VAR_DIR=var_dir))
    hint = bash(
        f"source {SCRIPTS}/lib.sh && stack_command stop redis", scripts_env(A4C_VAR_DIR=var_dir)
    ).stdout.strip()
    # The hint, as the quickstart prints it, run in a shell that knows nothing of the stack.
    stopped = bash(hint, scripts_env())

    # The columns pad to the widest value; a pid's width varies, so read the row's fields.
    rows = [line.split() for line in status.stdout.splitlines()]
    assert ["redis", "running", "pid", str(pid), f"redis://127.0.0.1:{port}/0"] in rows
    assert f"was started ({var_dir}/stack.env): A4C_REDIS_PORT={port}" in status.stdout
    assert hint == (
        f"A4C_VAR_DIR={var_dir} A4C_REDIS_PORT={port} bash {SCRIPTS}/services.sh stop redis"
    )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert f"stopping Redis (pid {pid})" in stopped.stdout
    assert exited(pid) and not answers(port)
    other = free_port()
    given = bash(
        f"bash {SCRIPTS}/services.sh status redis",
        scripts_env(A4C_VAR_DIR=var_dir, A4C_REDIS_PORT=other),
    )
    assert "redis   stopped" in given.stdout and "was started" not in given.stdout


def test_a_stack_file_holds_only_plain_settings_and_nothing_in_it_runs(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    planted = tmp_path / "planted"
    (var_dir / "stack.env").write_text(
        f"A4C_WEB_PORT=$(touch {planted})\nPATH=/nowhere\nA4C_ES_PORT=9299\n"
    )

    said = bash(
        f'source {SCRIPTS}/lib.sh && echo "$ES_URL $WEB_URL $PATH"',
        scripts_env(A4C_VAR_DIR=var_dir),
    )

    assert said.returncode == 0 and not planted.exists()
    assert said.stdout.startswith("http://127.0.0.1:9299 http://127.0.0.1:8000/ ")
    assert "/nowhere" not in said.stdout
    assert "ignored the line A4C_WEB_PORT=\\$\\(touch" in said.stderr
    assert "ignored the line PATH=/nowhere" in said.stderr


FAKE_SERVICES = """
source {lib}
service_is_ours() {{ [[ -e "$FAKE/$1" ]]; }}
stop_service() {{
    [[ "$1" != stubborn ]] || return 1
    rm "$FAKE/$1" && echo "fake: $1 stopped"
}}
service_stop_command() {{ echo "fake-services stop $1"; }}
touch "$FAKE/es"
before="$(running_services es redis postgres a4c stubborn)"
touch "$FAKE/redis" "$FAKE/a4c" {also}
stop_services_started_since "$before" es redis postgres a4c stubborn
"""


def test_a_run_stops_what_it_started_and_says_what_it_left_running(tmp_path):
    """What scripts/test.sh does at its end (scripts/lib.sh), with services that are files."""
    fake = tmp_path / "services"
    fake.mkdir()
    script = FAKE_SERVICES.format(lib=SCRIPTS / "lib.sh", also='"$FAKE/stubborn"')

    run = bash(script, scripts_env(A4C_VAR_DIR=tmp_path / "var", FAKE=fake))

    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in fake.iterdir()) == ["es", "stubborn"]
    assert "fake: a4c stopped\nfake: redis stopped\n" in run.stdout, "last started, first stopped"
    assert "could not stop stubborn, which this run started" in run.stderr
    last = run.stdout.splitlines()[-3:]
    assert last == [
        "==> left running, as they ran before this run began or would not stop: stubborn es; "
        "stop them with:",
        "    fake-services stop stubborn",
        "    fake-services stop es",
    ]
    assert "==> stopped what this run started: a4c redis" in run.stdout


def test_a_run_asked_to_keep_its_services_stops_nothing_and_says_how_to(tmp_path):
    fake = tmp_path / "services"
    fake.mkdir()
    script = FAKE_SERVICES.format(lib=SCRIPTS / "lib.sh", also="")

    run = bash(script, scripts_env(A4C_VAR_DIR=tmp_path / "var", FAKE=fake, A4C_KEEP_SERVICES=1))

    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in fake.iterdir()) == ["a4c", "es", "redis"]
    assert run.stdout.splitlines()[-4:] == [
        "==> left running (A4C_KEEP_SERVICES=1): a4c redis es; stop them with:",
        "    fake-services stop a4c",
        "    fake-services stop redis",
        "    fake-services stop es",
    ]


def test_the_test_script_keeps_the_tests_exit_status_and_cleans_up_on_every_exit():
    script = (SCRIPTS / "test.sh").read_text()

    assert "trap finish EXIT" in script and 'exit "$status"' in script
    assert "exec " not in script, "an exec would skip stopping what the run started"

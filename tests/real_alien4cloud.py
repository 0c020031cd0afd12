"""The real Alien4Cloud 3.7.0, built and started by scripts/services.sh once per test session.

A test module takes it with ``from real_alien4cloud import real_a4c  # noqa: F401`` and the
``real_a4c`` argument. Nothing is skipped when the server is absent: the first use builds it
(3 to 4 minutes with downloads, cached outside the clone afterwards) and starts it (25 to
45 s). The server is left running for the next session, as `scripts/services.sh start es`
leaves Elasticsearch; stop it with `bash scripts/services.sh stop a4c` (scripts/test.sh stops
it at its end when it did not run before the tests).
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from pathlib import Path

import pytest

from backups.alien4cloud.client import Server

PROJECT_DIR = Path(__file__).resolve().parent.parent
SERVICES = PROJECT_DIR / "scripts" / "services.sh"
# Building on a 2-core machine takes 3 to 4 minutes, starting up to 45 s.
START_TIMEOUT = 900


@dataclasses.dataclass(frozen=True)
class RealAlien4Cloud:
    """Where the real server is, and the settings that point the console at it."""

    url: str
    es_url: str
    data_dir: Path
    repo_path: Path  # A4C_ES_REPOSITORY_PATH: a directory under the embedded node's path.repo
    restart_command: str
    username: str
    password: str
    env: dict[str, str]  # every line of `services.sh env a4c`

    def server(self, **kwargs) -> Server:
        """A signed-in client as the admin Alien4Cloud creates on a new data dir."""
        return Server(self.url, self.username, self.password, **kwargs)

    def restart(self) -> None:
        """What the tool's A4C_RESTART_COMMAND does; returns once /rest/admin/health is 200."""
        subprocess.run(shlex.split(self.restart_command), check=True, timeout=START_TIMEOUT)


def _services(*arguments: str) -> str:
    result = subprocess.run(
        ["bash", str(SERVICES), *arguments],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    if result.returncode != 0:
        pytest.fail(
            f"`scripts/services.sh {' '.join(arguments)}` failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    return result.stdout


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name:
            env[name] = shlex.split(value)[0] if value else ""
    return env


@pytest.fixture(scope="session")
def real_a4c() -> RealAlien4Cloud:
    """The real Alien4Cloud of this checkout, started (and built) when it is not running."""
    _services("start", "a4c")
    env = _parse_env(_services("env", "a4c"))
    return RealAlien4Cloud(
        url=env["A4C_SERVER_URL"],
        es_url=env["A4C_ES_URLS"],
        data_dir=Path(env["A4C_DATA_DIR"]),
        repo_path=Path(env["A4C_ES_REPOSITORY_PATH"]),
        restart_command=env["A4C_RESTART_COMMAND"],
        username=env["A4C_SERVER_USERNAME"],
        password=env["A4C_SERVER_PASSWORD"],
        env=env,
    )

"""The web server as scripts/services.sh starts it: slow or idle clients cannot freeze it, and
it believes X-Forwarded-Proto only from A4C_TRUSTED_PROXY."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from fault_support import wait_for
from people import member

from backups.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT = Path(django_settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def start_web(tmp_path):
    """Starts `scripts/services.sh start web` on a free port, against this test's database and
    with this test's secret key (so a session made here is valid there); stops it after."""
    started = []

    def start(**extra_env) -> str:
        port = free_port()
        env = {
            **os.environ,
            "A4C_VAR_DIR": str(tmp_path / f"var-{len(started)}"),
            "A4C_VENV": sys.prefix,
            "A4C_WEB_PORT": str(port),
            "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
            "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,
            **extra_env,
        }
        done = subprocess.run(
            ["bash", "scripts/services.sh", "start", "web"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        started.append(env)
        return f"http://127.0.0.1:{port}"

    yield start
    for env in started:
        subprocess.run(
            ["bash", "scripts/services.sh", "stop", "web"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            timeout=150,
        )


def signed_in_cookie(user) -> dict:
    client = Client()
    client.force_login(user)
    return {django_settings.SESSION_COOKIE_NAME: client.cookies["sessionid"].value}


def not_yet_accepted(port: int) -> int:
    """Connections the kernel holds for the server listening on ``port`` that it has not yet
    accepted (a listening socket's rx_queue in /proc/net/tcp is its accept queue)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                return int(queues.split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


def half_sent_requests(port: int, count: int) -> list[socket.socket]:
    """Connections that each send the start of a request and then nothing: half of them stop
    inside the headers, half inside a body they announced."""
    held = []
    for n in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if n % 2:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        else:
            sock.sendall(
                b"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: 1000\r\n\r\nusername=half"
            )
        held.append(sock)
    return held


def test_fifty_half_sent_requests_leave_healthz_and_the_backup_list_answering_within_a_second(
    start_web,
):
    base = start_web()
    cookies = signed_in_cookie(member("vic", "viewers"))
    port = int(base.rsplit(":", 1)[1])
    held = half_sent_requests(port, 50)
    try:
        wait_for(lambda: not_yet_accepted(port) == 0, 10, "the server accepting them all")
        for _ in range(3):
            began = time.monotonic()
            health = requests.get(f"{base}/healthz", timeout=5)
            health_took = time.monotonic() - began
            began = time.monotonic()
            page = requests.get(
                f"{base}/backups/", cookies=cookies, timeout=5, allow_redirects=False
            )
            page_took = time.monotonic() - began

            assert health.status_code == 200 and health.text == "up\n"
            assert health_took < 1.0, f"/healthz took {health_took:.2f} s"
            assert page.status_code == 200 and "Backups" in page.text
            assert page_took < 1.0, f"/backups/ took {page_took:.2f} s"
        # The slow clients are still connected: they were waited for, not dropped to cope.
        still_open = 0
        for sock in held:
            sock.setblocking(False)
            try:
                still_open += sock.recv(1) != b""
            except BlockingIOError:
                still_open += 1
        assert still_open == 50
    finally:
        for sock in held:
            sock.close()


def test_behind_https_the_proxy_s_forwarded_scheme_is_believed_only_from_the_trusted_proxy(
    start_web,
):
    trusting = start_web(A4C_HTTPS="true", A4C_TRUSTED_PROXY="127.0.0.1")
    https = {"X-Forwarded-Proto": "https"}

    plain = requests.get(f"{trusting}/accounts/login/", allow_redirects=False, timeout=5)
    proxied = requests.get(
        f"{trusting}/accounts/login/", headers=https, allow_redirects=False, timeout=5
    )
    probe = requests.get(f"{trusting}/healthz", allow_redirects=False, timeout=5)

    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
    assert proxied.status_code == 200
    assert proxied.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Secure" in proxied.headers["Set-Cookie"]  # the CSRF cookie of the sign-in form
    assert probe.status_code == 200, "a load balancer's plain HTTP probe is not redirected"

    untrusting = start_web(A4C_HTTPS="true")
    spoofed = requests.get(
        f"{untrusting}/accounts/login/", headers=https, allow_redirects=False, timeout=5
    )

    assert spoofed.status_code == 301, "without A4C_TRUSTED_PROXY the header is dropped"


def test_behind_the_trusted_proxy_the_audit_records_the_address_the_proxy_saw(start_web):
    base = start_web(A4C_TRUSTED_PROXY="127.0.0.1")
    browser = requests.Session()
    browser.get(f"{base}/accounts/login/", timeout=5)

    # The client wrote 192.0.2.66 itself; the proxy appended the address it saw.
    browser.post(
        f"{base}/accounts/login/",
        data={
            "username": "vic",
            "password": "wrong",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"X-Forwarded-For": "192.0.2.66, 198.51.100.23"},
        timeout=5,
    )

    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.ip == "198.51.100.23"

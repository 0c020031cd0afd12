"""The web server of the console: waitress, run the same way by scripts/services.sh, the
Dockerfile and docker-compose.yml (`python -m a4c_backup.serve --port 8000`).

waitress reads every request whole, headers and body, in its event loop before it hands it to
one of its threads: a client that sends half a request, or nothing, holds a socket, never a
thread, so /healthz and the pages keep answering. Such a client is dropped after
CHANNEL_TIMEOUT seconds of silence, and no more than CONNECTION_LIMIT sockets are held.
"""

from __future__ import annotations

import argparse
import os

# A console serves forms and fragments; nothing it accepts comes near these.
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 10 * 1024 * 1024
CHANNEL_TIMEOUT = 30
CONNECTION_LIMIT = 1000
THREADS = 8


def server_options(host: str, port: int, threads: int, trusted_proxy: str) -> dict:
    options = {
        "host": host,
        "port": port,
        "threads": threads,
        "channel_timeout": CHANNEL_TIMEOUT,
        "cleanup_interval": 10,
        "connection_limit": CONNECTION_LIMIT,
        "max_request_header_size": MAX_HEADER_BYTES,
        "max_request_body_size": MAX_BODY_BYTES,
        # poll(): select() cannot watch more than 1024 sockets.
        "asyncore_use_poll": True,
        "ident": "a4c-backup",
    }
    if trusted_proxy:
        # From this peer only, X-Forwarded-For becomes the client address (what the audit and
        # the sign-in throttling see; waitress keeps only the entry the proxy appended, not
        # those the client wrote) and X-Forwarded-Proto the scheme; from any other peer
        # waitress drops those headers.
        options.update(
            trusted_proxy=trusted_proxy,
            trusted_proxy_count=1,
            trusted_proxy_headers={"x-forwarded-for", "x-forwarded-proto"},
        )
    return options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "a4c_backup.settings")

    from django.conf import settings
    from waitress import serve

    from a4c_backup.wsgi import application

    serve(
        application,
        **server_options(args.host, args.port, args.threads, settings.A4C_TRUSTED_PROXY),
    )


if __name__ == "__main__":
    main()

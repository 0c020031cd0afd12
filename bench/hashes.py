"""Hash throughput on this CPU: 1 GiB in 1 MiB chunks from memory, the minimum of 5 (issue 28,
item 4: SHA-256 against the options). blake3 is not one of the project's packages: run it with
a virtualenv of its own, `python3 -m venv /tmp/h && /tmp/h/bin/pip install blake3 &&
/tmp/h/bin/python bench/hashes.py > bench/results/hashes.txt`."""

import hashlib
import os
import time

CHUNK = os.urandom(1 << 20)


def seconds_per_gib(make) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        digest = make()
        for _ in range(1024):
            digest.update(CHUNK)
        digest.digest()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    rows = [
        ("sha256 (hashlib, OpenSSL)", hashlib.sha256),
        ("sha1", hashlib.sha1),
        ("md5", hashlib.md5),
        ("blake2b", hashlib.blake2b),
        ("sha512", hashlib.sha512),
    ]
    try:
        import blake3

        rows.append(("blake3 (one thread)", blake3.blake3))
        rows.append(("blake3 (max_threads=2)", lambda: blake3.blake3(max_threads=2)))
    except ImportError:
        pass
    for name, make in rows:
        print(f"{name:28s} {seconds_per_gib(make):.3f} s per GiB")


if __name__ == "__main__":
    main()

"""Elasticsearch-only backup and restore through the tool against the bare snapshot API.

Same indices, side by side in each run, the order alternating. The tool's backup is
request_backup + run_backup (counts, repository check, snapshot, polling, final check); the
bare one is one create-snapshot call with wait_for_completion. The tool's restore is
request_restore(scope=elasticsearch, safety_backup=False) + run_restore (plan, delete,
restore, wait for every shard, count check); the bare one deletes the indices and calls
restore with wait_for_completion. Each snapshot goes to a fresh repository, so both copy
everything (none is an incremental snapshot of the other).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.common import median, say, timed


def run_es(prefix: str, label: str, runs: int) -> dict:
    from django.conf import settings

    from backups import operations
    from backups.audit import Actor
    from backups.elastic import client as elastic
    from backups.models import Backup, RestoreRun

    cluster = elastic.cluster()
    client = cluster.client
    actor = Actor(name="bench", source="cli")
    names = sorted(cluster.indices(include=[prefix + "*"]))
    total = cluster.indices(include=names)
    docs = sum(i.docs for i in total.values())
    size = sum(i.size for i in total.values())
    repo_root = Path(sorted({p for ps in cluster.path_repo().values() for p in ps})[0])
    settings.A4C_INDEX_INCLUDE = [prefix + "*"]
    settings.A4C_INDEX_EXCLUDE = []
    rows = []
    slug = label.lower().replace(".", "")
    for i in range(runs):
        tool_repo, bare_repo = f"bench-{slug}-tool-{i}", f"bench-{slug}-bare-{i}"
        tool_path, bare_path = (
            repo_root / f"bench-{slug}-tool-{i}",
            repo_root / f"bench-{slug}-bare-{i}",
        )
        settings.A4C_ES_REPOSITORY, settings.A4C_ES_REPOSITORY_PATH = tool_repo, str(tool_path)
        cluster.ensure_repository(tool_repo, str(tool_path))
        cluster.ensure_repository(bare_repo, str(bare_path))
        name = f"bench-{slug}-{i}"
        row: dict = {"run": i}

        def tool_backup(name=name):
            backup = operations.run_backup(
                operations.request_backup(
                    operations.BackupRequest(name=name, include_files=False), actor
                ).pk
            )
            assert backup.status == Backup.Status.SUCCEEDED, backup.error_message
            return backup

        def bare_backup(bare_repo=bare_repo, name=name):
            client.snapshot.create(
                repository=bare_repo,
                snapshot=name,
                indices=",".join(names),
                include_global_state=False,
                wait_for_completion=True,
            )

        if i % 2 == 0:
            row["tool_backup"], backup = timed(tool_backup)
            row["bare_backup"], _ = timed(bare_backup)
        else:
            row["bare_backup"], _ = timed(bare_backup)
            row["tool_backup"], backup = timed(tool_backup)

        def tool_restore(backup=backup):
            run = operations.request_restore(
                operations.RestoreRequest(backup.pk, scope="elasticsearch", safety_backup=False),
                actor,
            )
            run = operations.run_restore(run.pk)
            assert run.status == RestoreRun.Status.SUCCEEDED, run.error_message

        def bare_restore(bare_repo=bare_repo, name=name):
            client.indices.delete(index=",".join(names))
            client.snapshot.restore(
                repository=bare_repo,
                snapshot=name,
                indices=",".join(names),
                include_aliases=True,
                include_global_state=False,
                index_settings={"index.number_of_replicas": 0},
                wait_for_completion=True,
            )

        if i % 2 == 0:
            row["tool_restore"], _ = timed(tool_restore)
            row["bare_restore"], _ = timed(bare_restore)
        else:
            row["bare_restore"], _ = timed(bare_restore)
            row["tool_restore"], _ = timed(tool_restore)

        for repo, path in ((tool_repo, tool_path), (bare_repo, bare_path)):
            for snap in cluster.snapshots(repo):
                cluster.delete_snapshot(repo, snap.name)
            cluster.delete_repository(repo)
            shutil.rmtree(path, ignore_errors=True)
        Backup.objects.filter(pk=backup.pk).update(status=Backup.Status.DELETED)
        for kind in ("backup", "restore"):
            tool, bare = row[f"tool_{kind}"], row[f"bare_{kind}"]
            row[f"{kind}_ratio"] = tool / bare
            row[f"{kind}_overhead"] = tool - bare
        say(
            f"  run {i + 1}/{runs}: backup tool {row['tool_backup']:.2f}s bare "
            f"{row['bare_backup']:.2f}s; restore tool {row['tool_restore']:.2f}s bare "
            f"{row['bare_restore']:.2f}s"
        )
        rows.append(row)
    keys = [k for k, v in rows[0].items() if isinstance(v, float)]
    summary = {k: median([r[k] for r in rows]) for k in keys}
    summary.update(indices=len(names), documents=docs, bytes=size, runs=rows)
    return summary

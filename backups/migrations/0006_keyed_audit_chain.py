"""The audit chain's hashes become HMACs keyed with settings.A4C_AUDIT_KEY.

The history written so far is re-sealed: its plain SHA-256 chain is checked event by event and
every event up to the first one that does not verify gets its keyed hash. An event found broken
keeps its old values, so ``audit_verify`` still reports the break at that very event instead of
the re-sealing laundering it. The hashing is frozen here, as it was when the events were written.
"""

import hashlib
import hmac
import json

from django.conf import settings
from django.db import migrations
from django.db.models import QuerySet

GENESIS = "0" * 64


def _canonical(event, prev: str) -> bytes:
    fields = {
        "at": event.at.isoformat(timespec="microseconds"),
        "actor": event.actor,
        "source": event.source,
        "action": event.action,
        "target": event.target,
        "parameters": event.parameters,
        "outcome": event.outcome,
        "message": event.message,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "backup": event.backup_id,
        "restore": event.restore_id,
        "prev": prev,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str).encode()


def _plain(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _keyed(data: bytes) -> str:
    return hmac.new(settings.A4C_AUDIT_KEY.encode(), data, hashlib.sha256).hexdigest()


def _reseal(apps, old_hash, new_hash) -> None:
    AuditEvent = apps.get_model("backups", "AuditEvent")
    AuditChainHead = apps.get_model("backups", "AuditChainHead")
    old_prev = new_prev = GENESIS
    last_id = 0
    while True:
        # Read in batches, written row by row: SQLite does not isolate a cursor from updates.
        events = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:2000])
        if not events:
            break
        for event in events:
            if event.prev_hash != old_prev or old_hash(_canonical(event, old_prev)) != event.hash:
                return  # broken here: left as found, and the head with it
            sealed = new_hash(_canonical(event, new_prev))
            # A plain QuerySet: the model's own refuses every update (the history is append-only).
            QuerySet(AuditEvent).filter(pk=event.pk).update(prev_hash=new_prev, hash=sealed)
            old_prev, new_prev = event.hash, sealed
        last_id = events[-1].id
    AuditChainHead.objects.filter(pk=1, last_hash=old_prev).update(last_hash=new_prev)


def keyed(apps, schema_editor) -> None:
    _reseal(apps, _plain, _keyed)


def plain(apps, schema_editor) -> None:
    _reseal(apps, _keyed, _plain)


class Migration(migrations.Migration):
    dependencies = [("backups", "0005_a4c_maintenance")]
    operations = [migrations.RunPython(keyed, plain)]

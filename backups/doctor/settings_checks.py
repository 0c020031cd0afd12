"""Django system checks: each names the exact setting that is wrong and what to do."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register

from backups.alien4cloud import configuration as alien4cloud
from backups.doctor import network
from backups.doctor import offsite as offsite_doctor
from backups.elastic.addresses import check_urls
from backups.errors import ConfigError
from backups.operations import drill_scratch, signing
from backups.signing import parse_trusted_keys
from backups.sizes import parse_bandwidth

# a run renews its storage lease at most every 30 s: a lease must outlive two misses
MIN_LEASE_SECONDS = 90


# The tag of the checks every command runs before it starts (backups/management/base.py): the
# settings alone, read without the network; `manage.py check` and doctor run them all.
SETTINGS = "a4c_settings"


@register(SETTINGS)
def check_settings(app_configs=None, **kwargs):
    return [
        *elasticsearch_problems(),
        *places_problems(),
        *neighbours_problems(),
        *signing_problems(),
        *offsite_problems(),
    ]


def elasticsearch_problems() -> list:
    """The original tool's config file, and how Elasticsearch is reached and where it snapshots."""
    problems = []
    if settings.LEGACY_CONFIG_ERROR:
        problems.append(
            Error(
                settings.LEGACY_CONFIG_ERROR, hint="Fix the YAML or remove the file.", id="a4c.E001"
            )
        )
    try:
        check_urls(settings.A4C_ES_URLS, settings.A4C_ES_URLS_SOURCE)
    except ConfigError as exc:
        problems.append(Error(str(exc), id="a4c.E002"))
    if settings.A4C_ES_API_KEY and settings.A4C_ES_USERNAME:
        problems.append(
            Error(
                "Both A4C_ES_API_KEY and A4C_ES_USERNAME are set: choose one way to authenticate.",
                id="a4c.E003",
            )
        )
    if settings.A4C_ES_CA_CERT and not Path(settings.A4C_ES_CA_CERT).is_file():
        problems.append(
            Error(
                f"A4C_ES_CA_CERT names {settings.A4C_ES_CA_CERT}, which is not a file.",
                id="a4c.E004",
            )
        )
    if not Path(settings.A4C_ES_REPOSITORY_PATH).is_absolute():
        problems.append(
            Error(
                "A4C_ES_REPOSITORY_PATH must be an absolute path, not "
                f"{settings.A4C_ES_REPOSITORY_PATH}.",
                id="a4c.E007",
            )
        )
    return problems


def places_problems() -> list:
    """The data dir, the backup storage, and how files are copied between them."""
    problems = []
    data_dir = Path(settings.A4C_DATA_DIR)
    if not data_dir.is_dir():
        problems.append(
            Warning(
                f"The A4C data dir {data_dir} does not exist (A4C_DATA_DIR, from "
                f"{settings.A4C_DATA_DIR_SOURCE}); backups of files will fail until it does "
                "(a restore creates it).",
                id="a4c.W001",
            )
        )
    elif not os.access(data_dir, os.R_OK | os.X_OK):
        problems.append(
            Error(
                f"The A4C data dir {data_dir} cannot be read by this user (A4C_DATA_DIR).",
                id="a4c.E005",
            )
        )
    backup_dir = Path(settings.A4C_BACKUP_DIR)
    existing = next((p for p in [backup_dir, *backup_dir.parents] if p.exists()), None)
    if existing is None or not os.access(existing, os.W_OK):
        problems.append(
            Error(
                f"The backup storage {backup_dir} cannot be created or written "
                f"(A4C_BACKUP_DIR, from {settings.A4C_BACKUP_DIR_SOURCE}).",
                id="a4c.E006",
            )
        )
    for name in settings.A4C_EXCLUDE_DIRS:
        if "/" in name or name in ("", ".", ".."):
            problems.append(
                Error(
                    f"A4C_EXCLUDE_DIRS holds {name!r}: list top-level directory names only.",
                    id="a4c.E008",
                )
            )
    try:
        parse_bandwidth(settings.A4C_FILE_BANDWIDTH)
    except ConfigError as exc:
        problems.append(Error(str(exc), id="a4c.E009"))
    if settings.A4C_STORAGE_LEASE_SECONDS < MIN_LEASE_SECONDS:
        problems.append(
            Error(
                f"A4C_STORAGE_LEASE_SECONDS is {settings.A4C_STORAGE_LEASE_SECONDS}: give at "
                f"least {MIN_LEASE_SECONDS} seconds (a run renews its lease every 30 s at most, "
                "and a lease that expires first lets another console collect its files).",
                hint="README, 'Disaster recovery' (several consoles sharing one storage).",
                id="a4c.E025",
            )
        )
    return problems


def neighbours_problems() -> list:
    """Alien4Cloud's REST API, the notification webhook, and the web server's network."""
    problems = [
        Error(problem, hint="README, 'Alien4Cloud maintenance mode'.", id="a4c.E010")
        for problem in alien4cloud.settings_problems()
    ]
    if str(settings.A4C_MAINTENANCE).strip().lower() == "required" and not alien4cloud.configured():
        problems.append(
            Error(
                "A4C_MAINTENANCE is required but A4C_SERVER_URL is not set: every backup and "
                "restore would be refused.",
                hint="Set A4C_SERVER_URL (and its user and password), or A4C_MAINTENANCE=auto.",
                id="a4c.E011",
            )
        )
    drill_prefix = drill_scratch.prefix_problem()
    if drill_prefix:
        problems.append(Error(drill_prefix, hint="README, 'Restore drills'.", id="a4c.E023"))
    problems.extend(drill_cluster_problems())
    if settings.A4C_DRILL_MAX_AGE_DAYS < 0:
        problems.append(
            Error(
                f"A4C_DRILL_MAX_AGE_DAYS is {settings.A4C_DRILL_MAX_AGE_DAYS:g}: give the days a "
                "passing drill may age before Health turns red, or 0 for no alarm.",
                hint="README, 'Restore drills'.",
                id="a4c.E024",
            )
        )
    webhook = settings.A4C_NOTIFY_WEBHOOK_URL
    if webhook and not webhook.lower().startswith(("http://", "https://")):
        problems.append(
            Error(
                f"A4C_NOTIFY_WEBHOOK_URL is {webhook!r}: give an http:// or https:// URL.",
                id="a4c.E020",
            )
        )
    problems.extend(
        Error(problem, hint="README, 'Running it for a team'.", id="a4c.E013")
        for problem in network.settings_problems()
    )
    return problems


def drill_cluster_problems() -> list[Error]:
    """A4C_DRILL_ES_URLS, when set, must be REST addresses of a cluster other than the live one."""
    if not settings.A4C_DRILL_ES_URLS:
        return []
    try:
        scratch = check_urls(settings.A4C_DRILL_ES_URLS, "A4C_DRILL_ES_URLS")
    except ConfigError as exc:
        return [
            Error(
                str(exc),
                hint="Give the scratch cluster's REST addresses, or leave A4C_DRILL_ES_URLS empty "
                "to drill in the live cluster (README, 'Restore drills').",
                id="a4c.E029",
            )
        ]
    try:
        live = set(check_urls(settings.A4C_ES_URLS, settings.A4C_ES_URLS_SOURCE))
    except ConfigError:
        return []  # a4c.E002 says it
    shared = sorted(live & set(scratch))
    if shared:
        return [
            Error(
                f"A4C_DRILL_ES_URLS names {', '.join(shared)}, an address of the live cluster "
                "(A4C_ES_URLS): a scratch cluster must be another cluster.",
                hint="Leave A4C_DRILL_ES_URLS empty to drill in the live cluster under drill "
                "names, or point it at another cluster (README, 'Restore drills').",
                id="a4c.E029",
            )
        ]
    return []


def signing_problems() -> list[Error]:
    """The signing key must load (or be made), and every trusted key must be one."""
    problems = []
    try:
        signing.installation_key()
    except ConfigError as exc:
        problems.append(Error(str(exc), hint="README, 'Trust'.", id="a4c.E021"))
    try:
        parse_trusted_keys(settings.A4C_TRUSTED_KEYS)
    except ConfigError as exc:
        problems.append(Error(str(exc), hint="README, 'Trust'.", id="a4c.E022"))
    return problems


def offsite_problems() -> list[Error | Warning]:
    """The off-site settings' shape, and recipients to encrypt the copies to."""
    hint = "README, 'Off-site copies'."
    problem = offsite_doctor.settings_problem()
    if problem:
        return [Error(problem, hint=hint, id="a4c.E026")]
    problem = offsite_doctor.recipients_problem()
    if problem:
        # A warning: an error would stop every command, `keygen` (the fix) among them; the
        # backups themselves are taken, and each copy is refused saying why.
        return [Warning(problem, hint=hint, id="a4c.W003")]
    return []


@register("offsite", deploy=True)
def check_offsite(app_configs=None, **kwargs):
    """`manage.py check --deploy` asks the bucket (and probes the credentials)."""
    found = offsite_doctor.offsite_check()
    if found.level == "error" and not (
        offsite_doctor.settings_problem() or offsite_doctor.recipients_problem()
    ):
        return [Error(found.summary, hint=found.fix, id="a4c.E028")]
    return []


@register("directory", deploy=True)
def check_directory(app_configs=None, **kwargs):
    """`manage.py check --deploy` binds to the directory: not on every command's start."""
    found = network.directory_check()
    if found is not None and found.level == "error":
        return [Error(found.summary, hint=found.fix, id="a4c.E014")]
    return []


@register("alien4cloud", deploy=True)
def check_alien4cloud(app_configs=None, **kwargs):
    """`manage.py check --deploy` signs in to Alien4Cloud: not on every command's start."""
    from backups.doctor.alien4cloud import alien4cloud_check

    found = alien4cloud_check()
    if found.level == "error":
        return [Error(found.summary, hint=found.fix, id="a4c.E012")]
    if found.level == "warning":
        return [Warning(found.summary, hint=found.fix, id="a4c.W002")]
    return []

#!/usr/bin/env bash
# The original Alien4Cloud backup-restore-tool.sh command line, kept so that the scripts and
# cron lines written for it go on working:
#
#     cd /opt/tool && ./backup-restore-tool.sh -backup -n nightly
#
# It reads config/config.yml in the original format (through the Django settings) and calls
# the management commands of a4c-backup with the project's own virtualenv. Everything it does
# is also a `manage.py` command with more options; see -help.

set -uo pipefail

PROG="$(basename "$0")"
TOOL_DIR="$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
PYTHON="${A4C_PYTHON:-$TOOL_DIR/.venv/bin/python}"
MANAGE="$TOOL_DIR/manage.py"

# Exit codes, the same as the management commands'.
EXIT_USAGE=2

usage() {
    cat <<EOF
Usage: $PROG -backup -n NAME | -restore -n NAME | -list | -delete -n NAME | -help  [-c FILE]

Backs up and restores Alien4Cloud: its Elasticsearch indices (as a snapshot) and its data
directory (alien4cloud.dir), as the original backup-restore tool did.

Actions (one of):
  -backup -n NAME    Back up Elasticsearch and the data dir under NAME. If a backup called
                     NAME exists already, the new one is NAME-YYYYMMDD-HHMMSS, so a nightly
                     cron line with a fixed name keeps every night's backup.
  -restore -n NAME   Restore the newest succeeded backup of NAME (NAME itself or one of its
                     NAME-YYYYMMDD-HHMMSS successors), without asking, after taking a safety
                     backup of what it overwrites. Stop Alien4Cloud first and restart it after;
                     Elasticsearch must stay up.
  -list              List the backups.
  -delete -n NAME    Delete the backup called exactly NAME.
  -help              Show this help.

Options:
  -n NAME            The backup name: letters, digits and - _ . + . Elasticsearch requires
                     lowercase, so a name in capitals (yourBackupName) is stored as its
                     lowercase form (yourbackupname), the name as typed kept in the backup's
                     description; -restore and -delete accept either.
  -c FILE            Read this config.yml instead of $TOOL_DIR/config/config.yml.

Environment variables override config.yml (A4C_ES_URLS, A4C_DATA_DIR, A4C_BACKUP_DIR ...).
Exit codes: 0 success, 1 failure, 2 bad usage, 3 another operation is running, 4 not found.
More commands and options: $PYTHON $MANAGE help
EOF
}

say() {
    printf '%s: %s\n' "$PROG" "$*"
}

usage_error() {
    printf '%s: error: %s (see %s -help)\n' "$PROG" "$*" "$PROG" >&2
    exit "$EXIT_USAGE"
}

action=""
name=""
typed=""
config=""

set_action() {
    if [[ -n "$action" && "$action" != "$1" ]]; then
        usage_error "choose one action: -$action and -$1 cannot go together"
    fi
    action="$1"
}

while (($#)); do
    case "$1" in
    -backup | --backup) set_action backup ;;
    -restore | --restore) set_action restore ;;
    -list | --list) set_action list ;;
    -delete | --delete) set_action delete ;;
    -help | --help | -h) set_action help ;;
    -n | --name | -c | --config)
        if (($# < 2)) || [[ -z "$2" ]]; then
            usage_error "$1 needs a value"
        fi
        if [[ "$1" == -n || "$1" == --name ]]; then name="$2"; else config="$2"; fi
        shift
        ;;
    *) usage_error "unknown option '$1'" ;;
    esac
    shift
done

if [[ -z "$action" ]]; then
    usage_error "choose an action: -backup -n NAME, -restore -n NAME, -list or -delete -n NAME"
fi
if [[ "$action" == help ]]; then
    usage
    exit 0
fi

case "$action" in
backup | restore | delete)
    [[ -n "$name" ]] || usage_error "-$action needs a backup name: -$action -n NAME"
    # The original tool took names in capitals (its own documentation says -n yourBackupName)
    # and cron lines still pass them: the backup keeps the name as typed in its description,
    # and is stored under the lowercase name Elasticsearch requires. -restore and -delete
    # derive the same name, so one -n works for all three.
    typed="$name"
    name="${name,,}"
    ;;
*)
    [[ -z "$name" ]] || usage_error "-$action takes no -n NAME"
    ;;
esac

if [[ -n "$config" ]]; then
    [[ -f "$config" ]] || usage_error "the config file $config does not exist"
    A4C_LEGACY_CONFIG="$(readlink -f "$config")"
    export A4C_LEGACY_CONFIG
fi
config_shown="${A4C_LEGACY_CONFIG:-$TOOL_DIR/config/config.yml}"
if [[ ! -f "$config_shown" ]]; then
    config_shown="none ($config_shown does not exist: environment and defaults)"
fi

if [[ ! -x "$PYTHON" ]]; then
    printf '%s: error: no Python environment at %s: run %s first, or set A4C_PYTHON\n' \
        "$PROG" "$PYTHON" "$TOOL_DIR/scripts/setup.sh" >&2
    exit 1
fi

manage() {
    "$PYTHON" "$MANAGE" "$@"
}

case "$action" in
backup)
    if [[ "$typed" != "$name" ]]; then
        say "backing up Alien4Cloud as $name ($typed in lowercase, as Elasticsearch requires; config: $config_shown)"
    else
        say "backing up Alien4Cloud as $name (config: $config_shown)"
    fi
    manage backup --name "$name" --unique --description "backup-restore-tool.sh -backup -n $typed"
    ;;
restore)
    say "restoring the newest backup of $name (config: $config_shown)"
    # config.yml names the cluster to work on, so a backup taken on another one (the machine
    # lost in a disaster) is restored into it; restore syncs the catalog from
    # backup.files_dir when it does not list NAME (a fresh install).
    manage restore "$name" --newest --yes --other-cluster
    ;;
list)
    manage backups
    ;;
delete)
    say "deleting backup $name (config: $config_shown)"
    manage delete "$name" --yes
    ;;
esac
status=$?

if ((status == 0)); then
    say "$action done"
else
    say "$action failed (exit code $status)" >&2
fi
exit "$status"

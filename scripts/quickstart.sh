#!/usr/bin/env bash
# From a fresh clone to a running console with demo data: installs what is missing, starts
# every service, prepares the database and the admin user. Running it again reuses all of it.
#
# By default the console backs up a made-up installation: the standalone Elasticsearch with
# `manage.py demo_data`. With --alien4cloud (or A4C_QUICKSTART_TARGET=alien4cloud) it backs
# up the real Alien4Cloud 3.7.0 instead: builds and starts it (services.sh start a4c), fills it
# with `manage.py a4c_demo_content`, then starts the worker, beat and web with the settings
# that point them at it (services.sh env a4c) in their environment. Those settings are not
# written into .env: settings.py reads .env in every process, the test suite's included,
# whose tests expect the standalone Elasticsearch and no Alien4Cloud configured.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICKSTART_LOG="$LOG_DIR/quickstart.log"
TARGET="${A4C_QUICKSTART_TARGET:-demo}"

usage() {
    cat <<EOF_USAGE
Usage: scripts/quickstart.sh [--alien4cloud]

  --alien4cloud   back up the real Alien4Cloud $ALIEN4CLOUD_VERSION (built on first use, about
                  3 minutes) instead of the made-up demo installation. The same as
                  A4C_QUICKSTART_TARGET=alien4cloud.
EOF_USAGE
}

manage() {
    run_logged "$QUICKSTART_LOG" "manage.py $*" "$VENV/bin/python" manage.py "$@"
}

# Points this run's commands and the services it starts at the real Alien4Cloud.
use_alien4cloud_settings() {
    local settings
    settings="$(bash "$SCRIPTS_DIR/services.sh" env a4c)"
    set -a
    eval "$settings"
    set +a
}

main() {
    case "${1:-}" in
    --alien4cloud) TARGET=alien4cloud ;;
    "") ;;
    -h | --help)
        usage
        return 0
        ;;
    *)
        usage >&2
        return 2
        ;;
    esac
    case "$TARGET" in
    demo | alien4cloud) ;;
    *) die "A4C_QUICKSTART_TARGET=$TARGET: use demo (the default) or alien4cloud" ;;
    esac

    bash "$SCRIPTS_DIR/setup.sh"
    cd "$PROJECT_DIR"
    if [[ "$TARGET" == alien4cloud ]]; then
        bash "$SCRIPTS_DIR/services.sh" start redis a4c
        use_alien4cloud_settings
        manage migrate --noinput
        manage a4c_demo_content
    else
        bash "$SCRIPTS_DIR/services.sh" start es redis
        manage migrate --noinput
        manage demo_data --size small
    fi
    say "manage.py ensure_admin"
    admin_message="$("$VENV/bin/python" manage.py ensure_admin 2>&1)" ||
        die "manage.py ensure_admin failed: $admin_message"
    if [[ "$TARGET" == alien4cloud ]]; then
        # Running ones may have been started with the other target's settings.
        bash "$SCRIPTS_DIR/services.sh" restart worker beat web
    else
        bash "$SCRIPTS_DIR/services.sh" start worker beat web
    fi

    # The exact commands for this stack: its var dir and ports spelled out, so that on a
    # shared host they reach this stack and no other (they are also kept in its stack.env).
    cat <<EOF_MESSAGE

a4c-backup is running.
  Console:  $WEB_URL
  Log in:   $admin_message
  Services: $(stack_command status)
  Stop all: $(stack_command stop all)
  Logs:     $LOG_DIR
EOF_MESSAGE
    if [[ "$TARGET" == alien4cloud ]]; then
        cat <<EOF_MESSAGE
  Alien4Cloud $ALIEN4CLOUD_VERSION: $ALIEN4CLOUD_URL (admin/admin), its data dir $ALIEN4CLOUD_DATA_DIR
  The worker, beat and web run with its settings; to restart them by hand, run this script
  again, or: set -a; eval "\$($(stack_command env a4c))"; set +a
EOF_MESSAGE
    fi
}

main "$@"

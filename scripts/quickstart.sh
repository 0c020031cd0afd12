#!/usr/bin/env bash
# From a fresh clone to a running console with demo data: installs what is missing, starts
# every service, prepares the database and the admin user. Running it again reuses all of it.
#
# By default the console backs up a made-up installation: the standalone Elasticsearch with
# `manage.py demo_data`. With --alien4cloud (or A4C_QUICKSTART_TARGET=alien4cloud) it backs
# up the real Alien4Cloud 3.7.0 instead: builds and starts it (services.sh start a4c), writes
# the settings that point the console at it into .env (services.sh env a4c), fills it with
# `manage.py a4c_demo_content`, then starts the worker, beat and web.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICKSTART_LOG="$LOG_DIR/quickstart.log"
TARGET="${A4C_QUICKSTART_TARGET:-demo}"
DOTENV="$PROJECT_DIR/.env"
DOTENV_BEGIN="# --- written by scripts/quickstart.sh --alien4cloud: the real Alien4Cloud (begin)"
DOTENV_END="# --- written by scripts/quickstart.sh --alien4cloud (end)"

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

# Takes the block this script wrote out of .env, leaving every other line as it is.
remove_alien4cloud_settings() {
    [[ -f "$DOTENV" ]] && grep -qxF "$DOTENV_BEGIN" "$DOTENV" || return 0
    awk -v begin="$DOTENV_BEGIN" -v end="$DOTENV_END" \
        '$0 == begin { skip = 1 } !skip { print } $0 == end { skip = 0 }' "$DOTENV" >"$DOTENV.new"
    mv "$DOTENV.new" "$DOTENV"
    say "removed the real Alien4Cloud's settings from $DOTENV"
}

# Points the console at the real Alien4Cloud: .env for every later start of the web and the
# worker, the environment for the services this run starts (lib.sh's defaults would win).
use_alien4cloud_settings() {
    local settings
    settings="$(bash "$SCRIPTS_DIR/services.sh" env a4c)"
    remove_alien4cloud_settings
    printf '%s\n%s\n%s\n' "$DOTENV_BEGIN" "$settings" "$DOTENV_END" >>"$DOTENV"
    say "wrote the settings that point the console at Alien4Cloud into $DOTENV"
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
        remove_alien4cloud_settings
        bash "$SCRIPTS_DIR/services.sh" start es redis
        manage migrate --noinput
        manage demo_data --size small
    fi
    say "manage.py ensure_admin"
    admin_message="$("$VENV/bin/python" manage.py ensure_admin 2>&1)" ||
        die "manage.py ensure_admin failed: $admin_message"
    bash "$SCRIPTS_DIR/services.sh" start worker beat web

    cat <<EOF_MESSAGE

a4c-backup is running.
  Console:  $WEB_URL
  Log in:   $admin_message
  Services: scripts/services.sh status   (stop them with: scripts/services.sh stop)
  Logs:     $LOG_DIR
EOF_MESSAGE
    if [[ "$TARGET" == alien4cloud ]]; then
        cat <<EOF_MESSAGE
  Alien4Cloud $ALIEN4CLOUD_VERSION: $ALIEN4CLOUD_URL (admin/admin), its data dir $ALIEN4CLOUD_DATA_DIR
  Back to the demo installation: scripts/quickstart.sh (it takes these settings out of .env)
EOF_MESSAGE
    fi
}

main "$@"

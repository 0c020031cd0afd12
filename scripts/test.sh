#!/usr/bin/env bash
# Runs the test suite against a real Elasticsearch, Redis, Celery worker processes, Chromium
# and the real Alien4Cloud 3.7.0 (built and started by its tests' fixture), installing and
# starting them first when needed. Arguments go to pytest:
#   scripts/test.sh -k restore -x
# With no arguments (as CI runs it) the fault-injection suite first runs once against
# PostgreSQL, whose locking differs from SQLite's, then the whole suite runs on SQLite.
#
# At its end it stops the services this run started (Elasticsearch, Redis, S3Proxy,
# PostgreSQL, the real Alien4Cloud), leaves running those that ran before it began, and says so in its last
# lines with the commands that stop them; A4C_KEEP_SERVICES=1 leaves everything running (for
# runs one after another). Its exit status is the tests'.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# In start order; the ones stop_services_started_since looks after (scripts/lib.sh).
TRACKED_SERVICES=(es redis s3 postgres a4c)

service_is_ours() {
    if [[ "$1" == postgres ]]; then
        bash "$SCRIPTS_DIR/postgres.sh" status 2>/dev/null | grep -q 'PostgreSQL running'
    else
        bash "$SCRIPTS_DIR/services.sh" status "$1" 2>/dev/null |
            awk -v service="$1" '$1 == service && $2 == "running" && $3 == "pid" { found = 1 }
                END { exit !found }'
    fi
}

stop_service() {
    if [[ "$1" == postgres ]]; then
        bash "$SCRIPTS_DIR/postgres.sh" stop
    else
        bash "$SCRIPTS_DIR/services.sh" stop "$1"
    fi
}

service_stop_command() {
    if [[ "$1" == postgres ]]; then
        printf 'A4C_VAR_DIR=%q bash %q stop\n' "$VAR_DIR" "$SCRIPTS_DIR/postgres.sh"
    else
        stack_command stop "$1"
    fi
}

running_before="$(running_services "${TRACKED_SERVICES[@]}")"
finish() {
    local status=$?
    trap - EXIT
    printf '\n'
    stop_services_started_since "$running_before" "${TRACKED_SERVICES[@]}" || true
    exit "$status"
}
trap finish EXIT

bash "$SCRIPTS_DIR/setup.sh"
bash "$SCRIPTS_DIR/services.sh" start es redis s3
cd "$PROJECT_DIR"

status=0
if [[ $# -gt 0 ]]; then
    "$VENV/bin/python" -m pytest "$@" || status=$?
    exit "$status"
fi

# The real Alien4Cloud's tests start it themselves (tests/real_alien4cloud.py); building it
# first shows the build's progress, about 3 minutes once, instead of a silent pause.
bash "$SCRIPTS_DIR/install-a4c.sh"
bash "$SCRIPTS_DIR/postgres.sh" start
say "the fault-injection suite on PostgreSQL"
DATABASE_URL="$(bash "$SCRIPTS_DIR/postgres.sh" url)" \
    "$VENV/bin/python" -m pytest -p no:cacheprovider tests/test_faults_*.py || status=$?
say "the whole suite on SQLite"
"$VENV/bin/python" -m pytest || status=$?
exit "$status"

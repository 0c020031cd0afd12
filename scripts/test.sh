#!/usr/bin/env bash
# Runs the test suite against a real Elasticsearch, Redis, Celery worker processes, Chromium
# and the real Alien4Cloud 3.7.0 (built and started by its tests' fixture, then left running
# like Elasticsearch), installing and starting them first when needed. Arguments go to pytest:
#   scripts/test.sh -k restore -x
# With no arguments (as CI runs it) the fault-injection suite first runs once against
# PostgreSQL, whose locking differs from SQLite's, then the whole suite runs on SQLite.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$SCRIPTS_DIR/setup.sh"
bash "$SCRIPTS_DIR/services.sh" start es redis s3
cd "$PROJECT_DIR"

if [[ $# -gt 0 ]]; then
    exec "$VENV/bin/python" -m pytest "$@"
fi

status=0
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

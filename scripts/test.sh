#!/usr/bin/env bash
# Runs the test suite against a real Elasticsearch and Redis, installing and starting them
# first when needed. Arguments go to pytest: scripts/test.sh -k restore -x

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bash "$SCRIPTS_DIR/setup.sh"
bash "$SCRIPTS_DIR/services.sh" start es redis
cd "$PROJECT_DIR"
exec "$VENV/bin/python" -m pytest "$@"

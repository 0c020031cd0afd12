#!/usr/bin/env bash
# From a fresh clone to a running console with demo data: installs what is missing, starts
# every service, prepares the database and the admin user. Running it again reuses all of it.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICKSTART_LOG="$LOG_DIR/quickstart.log"

manage() {
    run_logged "$QUICKSTART_LOG" "manage.py $*" "$VENV/bin/python" manage.py "$@"
}

bash "$SCRIPTS_DIR/setup.sh"
bash "$SCRIPTS_DIR/services.sh" start es redis
cd "$PROJECT_DIR"
manage migrate --noinput
manage demo_data --size small
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

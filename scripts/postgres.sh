#!/usr/bin/env bash
# A private PostgreSQL for running the test suite on it (its locking differs from SQLite's):
# one cluster under var/pg, run by the postgres user, on 127.0.0.1:5433 (A4C_PG_PORT), with a
# role and database "a4c" whose password is A4C_PG_PASSWORD (a test-only default).
#
#   scripts/postgres.sh start   # installs Debian's postgresql if missing; idempotent
#   scripts/postgres.sh stop    # idempotent
#   scripts/postgres.sh url     # prints the DATABASE_URL to test with
#
# Then: DATABASE_URL="$(scripts/postgres.sh url)" .venv/bin/python -m pytest tests/test_faults_*.py

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT="${A4C_PG_PORT:-5433}"
PG_DIR="$VAR_DIR/pg"
PG_DATA="$PG_DIR/data"
PG_SOCKETS="$PG_DIR/run"
PG_LOG="$PG_DIR/postgres.log"
PG_ROLE="a4c"
PG_DATABASE="a4c"
PG_PASSWORD="${A4C_PG_PASSWORD:-a4c-test-only}"

# PostgreSQL refuses to run as root: root runs it as the postgres user the package creates.
if [[ $EUID -eq 0 ]]; then
    PG_OS_USER="postgres"
else
    PG_OS_USER="$(id -un)"
fi

usage() {
    printf 'usage: %s start|stop|url|status\n' "$(basename "$0")"
}

pg_bin_dir() {
    local dir
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)"
    [[ -n "$dir" && -x "$dir/initdb" ]] || return 1
    printf '%s\n' "$dir"
}

as_pg_user() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u "$PG_OS_USER" -- "$@"
    else
        "$@"
    fi
}

install_postgres() {
    pg_bin_dir >/dev/null && return
    say "installing PostgreSQL (Debian's postgresql package)"
    mkdir -p "$LOG_DIR"
    run_logged "$LOG_DIR/postgres-install.log" "apt-get update" as_root apt-get update
    run_logged "$LOG_DIR/postgres-install.log" "apt-get install postgresql" \
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
    pg_bin_dir >/dev/null || die "postgresql was installed but no initdb is under /usr/lib/postgresql"
}

pg_running() {
    local bin
    bin="$(pg_bin_dir)" || return 1
    [[ -f "$PG_DATA/PG_VERSION" ]] && as_pg_user "$bin/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

psql_admin() {
    as_pg_user "$(pg_bin_dir)/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKETS" -p "$PG_PORT" \
        -U postgres -d postgres "$@"
}

database_url() {
    printf 'postgres://%s:%s@127.0.0.1:%s/%s\n' "$PG_ROLE" "$PG_PASSWORD" "$PG_PORT" "$PG_DATABASE"
}

start_postgres() {
    local bin
    install_postgres
    bin="$(pg_bin_dir)"
    mkdir -p "$PG_DIR"
    chmod 0755 "$PG_DIR"
    mkdir -p "$PG_SOCKETS"
    if [[ $EUID -eq 0 ]]; then
        chown "$PG_OS_USER:" "$PG_DIR" "$PG_SOCKETS"
    fi
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
        say "creating a PostgreSQL cluster in $PG_DATA"
        as_pg_user "$bin/initdb" -D "$PG_DATA" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$PG_DIR/initdb.log" 2>&1 ||
            die "initdb failed" "$PG_DIR/initdb.log"
    fi
    if pg_running; then
        say "PostgreSQL already running: $(database_url | sed 's/:[^:@]*@/:***@/')"
    else
        if port_in_use "$PG_PORT"; then
            die "port $PG_PORT is taken by $(describe_port "$PG_PORT"). Free it or set A4C_PG_PORT."
        fi
        say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
        as_pg_user "$bin/pg_ctl" start -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
            -o "-p $PG_PORT -k $PG_SOCKETS -c listen_addresses=127.0.0.1" >/dev/null ||
            die "PostgreSQL failed to start." "$PG_LOG"
    fi
    # The role may create databases: pytest-django creates test_a4c and drops it at the end.
    psql_admin -v role="$PG_ROLE" -v password="$PG_PASSWORD" -v db="$PG_DATABASE" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN CREATEDB PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
    say "PostgreSQL is up; test with: DATABASE_URL=\"\$(scripts/postgres.sh url)\""
}

stop_postgres() {
    if pg_running; then
        say "stopping PostgreSQL"
        as_pg_user "$(pg_bin_dir)/pg_ctl" stop -D "$PG_DATA" -m fast -w >/dev/null
    else
        say "PostgreSQL is not running"
    fi
}

case "${1:-}" in
start) start_postgres ;;
stop) stop_postgres ;;
url) database_url ;;
status)
    if pg_running; then say "PostgreSQL running on 127.0.0.1:$PG_PORT"; else say "PostgreSQL stopped"; fi
    ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac

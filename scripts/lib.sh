# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts sourcing this
# Settings and helpers shared by setup.sh, services.sh, quickstart.sh and test.sh.
# Sourced, never run. Every setting can be overridden from the environment (A4C_*),
# so a second checkout, or a 9.x Elasticsearch, can run beside the first on other ports.

set -euo pipefail

PROJECT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS_DIR="$PROJECT_DIR/scripts"
VAR_DIR="${A4C_VAR_DIR:-$PROJECT_DIR/var}"
case "$VAR_DIR" in /*) ;; *) VAR_DIR="$PWD/$VAR_DIR" ;; esac

# What a stack was started with beyond the defaults, written by `services.sh start` into its
# var dir: read back here, so that `services.sh stop` or `status` given only A4C_VAR_DIR (or
# nothing, for var/) finds the ports and the Elasticsearch that stack runs, and a second
# start reuses them. A value in the environment wins; delete the file to go back to defaults.
STACK_FILE="$VAR_DIR/stack.env"
STACK_SETTINGS=(A4C_ES_VERSION A4C_ES_PORT A4C_ES_TRANSPORT_PORT A4C_ES_PATH_REPO
    A4C_REDIS_PORT A4C_WEB_PORT A4C_ALIEN4CLOUD_PORT A4C_ALIEN4CLOUD_ES_PORT
    A4C_ALIEN4CLOUD_ES_TRANSPORT_PORT)
STACK_REMEMBERED=()

# Reads STACK_FILE without running it: only the settings above, with plain values, each
# into a shell variable of its name unless the environment gives one.
read_stack_file() {
    local line name value
    [[ -r "$STACK_FILE" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        [[ -z "$line" || "$line" == "#"* || "$line" == A4C_VAR_DIR=* ]] && continue
        if [[ ! "$line" =~ ^([A-Z0-9_]+)=([A-Za-z0-9._/@:+,-]+)$ ]] ||
            [[ " ${STACK_SETTINGS[*]} " != *" ${BASH_REMATCH[1]} "* ]]; then
            printf 'WARNING: %s: ignored the line %q (settings it may hold: %s)\n' \
                "$STACK_FILE" "$line" "${STACK_SETTINGS[*]}" >&2
            continue
        fi
        name="${BASH_REMATCH[1]}"
        value="${BASH_REMATCH[2]}"
        [[ -n "${!name:-}" ]] && continue
        printf -v "$name" '%s' "$value"
        STACK_REMEMBERED+=("$name")
    done <"$STACK_FILE"
}
read_stack_file
# Downloads live outside the clone so a fresh checkout or `git clean` does not fetch them again.
CACHE_DIR="${A4C_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/a4c-backup}"
# A4C_VENV: another checkout's virtualenv (a worktree's tests run with the main one's).
VENV="${A4C_VENV:-$PROJECT_DIR/.venv}"
RUN_DIR="$VAR_DIR/run"
LOG_DIR="$VAR_DIR/log"

ES_VERSION="${A4C_ES_VERSION:-8.19.8}"
ES_PORT="${A4C_ES_PORT:-9200}"
ES_TRANSPORT_PORT="${A4C_ES_TRANSPORT_PORT:-9300}"
REDIS_PORT="${A4C_REDIS_PORT:-6379}"
WEB_PORT="${A4C_WEB_PORT:-8000}"

ES_MAJOR="${ES_VERSION%%.*}"
ES_HOME="$CACHE_DIR/elasticsearch-$ES_VERSION"
ES_ZIP="$CACHE_DIR/elasticsearch-$ES_VERSION.zip"
# 6.x comes as the full default distribution, what Alien4Cloud 3.x operators run (x-pack
# basic, analysis-common, reindex); later versions as the small integration-test zip.
if [[ "$ES_MAJOR" == 6 ]]; then
    ES_ARTIFACT="org.elasticsearch.distribution.zip:elasticsearch:$ES_VERSION:zip"
else
    ES_ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"
fi
# Everything Elasticsearch writes (config, data, logs, pid file) sits under ES_VAR_DIR,
# owned by the ES user. Snapshot repositories must live under ES_PATH_REPO. Each major
# version keeps its own data (8.x the historical var/es): a node of one major upgrades or
# refuses another's data, and switching A4C_ES_VERSION must do neither.
if [[ "$ES_MAJOR" == 8 ]]; then
    ES_VAR_DIR="$VAR_DIR/es"
else
    ES_VAR_DIR="$VAR_DIR/es$ES_MAJOR"
fi
ES_PID_FILE="$ES_VAR_DIR/run/elasticsearch.pid"
ES_PATH_REPO="${A4C_ES_PATH_REPO:-$VAR_DIR/es-repo}"
ES_URL="http://127.0.0.1:$ES_PORT"
WEB_URL="http://127.0.0.1:$WEB_PORT/"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

# Elasticsearch refuses to run as root, so root runs it as a dedicated system user.
if [[ $EUID -eq 0 ]]; then
    ES_USER="a4c-es"
else
    ES_USER="$(id -un)"
fi

# The Django settings read these; derive them from the ports above unless set explicitly,
# so the web, the worker and the tests all talk to the services these scripts start.
export A4C_VAR_DIR="$VAR_DIR"
export A4C_ES_URLS="${A4C_ES_URLS:-$ES_URL}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-$REDIS_URL}"
export A4C_ES_REPOSITORY_PATH="${A4C_ES_REPOSITORY_PATH:-$ES_PATH_REPO/a4c-backup}"

# The real Alien4Cloud 3.7.0 (REST server, no UI), built from its source tarballs into the
# cache by install-a4c.sh and run by `services.sh start a4c`. It embeds its own Elasticsearch
# 6.8 node, whose REST port is A4C_ALIEN4CLOUD_ES_PORT (the standalone ES above keeps 9200).
# The A4C_ALIEN4CLOUD_* settings are ours; the ALIEN4CLOUD_* names derived from them are
# kept apart from the A4C_* settings the Django side reads (A4C_DATA_DIR, A4C_ES_URLS...).
ALIEN4CLOUD_VERSION=3.7.0
ALIEN4CLOUD_SOURCE="${A4C_ALIEN4CLOUD_SOURCE:-$PROJECT_DIR/../shared/alien4cloud}"
ALIEN4CLOUD_PORT="${A4C_ALIEN4CLOUD_PORT:-8088}"
ALIEN4CLOUD_ES_PORT="${A4C_ALIEN4CLOUD_ES_PORT:-9250}"
# Its transport port, kept off the 9300 of the standalone Elasticsearch.
ALIEN4CLOUD_ES_TRANSPORT_PORT="${A4C_ALIEN4CLOUD_ES_TRANSPORT_PORT:-9350}"
ALIEN4CLOUD_START_TIMEOUT="${A4C_ALIEN4CLOUD_START_TIMEOUT:-180}"
ALIEN4CLOUD_HOME="$CACHE_DIR/alien4cloud-$ALIEN4CLOUD_VERSION"
ALIEN4CLOUD_SRC="$ALIEN4CLOUD_HOME/src"
ALIEN4CLOUD_CLASSPATH_FILE="$ALIEN4CLOUD_HOME/classpath.txt"
ALIEN4CLOUD_BUILT_STAMP="$ALIEN4CLOUD_HOME/built.stamp"
ALIEN4CLOUD_VAR_DIR="$VAR_DIR/alien4cloud"
ALIEN4CLOUD_DATA_DIR="$ALIEN4CLOUD_VAR_DIR/data"
ALIEN4CLOUD_ES_PATH_REPO="$ALIEN4CLOUD_VAR_DIR/es-repo"
ALIEN4CLOUD_URL="http://127.0.0.1:$ALIEN4CLOUD_PORT"
ALIEN4CLOUD_ES_URL="http://127.0.0.1:$ALIEN4CLOUD_ES_PORT"

# S3Proxy, a real S3-compatible server on its filesystem backend, stands in for the bucket
# of off-site copies in tests and on a developer's machine (`services.sh start s3`). Its jar
# comes from Maven into the cache like Elasticsearch; its objects live under S3_VAR_DIR.
S3PROXY_VERSION="${A4C_S3PROXY_VERSION:-2.6.0}"
S3PROXY_ARTIFACT="org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies"
S3PROXY_JAR="$CACHE_DIR/s3proxy-$S3PROXY_VERSION-jar-with-dependencies.jar"
S3_PORT="${A4C_S3_PORT:-9390}"
S3_IDENTITY="${A4C_S3_IDENTITY:-a4c-local}"
S3_CREDENTIAL="${A4C_S3_CREDENTIAL:-a4c-local-secret}"
S3_VAR_DIR="$VAR_DIR/s3"
S3_URL="http://127.0.0.1:$S3_PORT"

LOG_TAIL_LINES=30

# Writes STACK_FILE: the var dir and every setting of STACK_SETTINGS this stack was given
# (by the environment, or remembered), atomically, as several starts may run at once.
remember_stack() {
    local name tmp
    mkdir -p "$VAR_DIR"
    tmp="$(mktemp "$STACK_FILE.XXXXXX")"
    {
        printf '# Written by scripts/services.sh start: what the stack of this var dir was started\n'
        printf '# with beyond the defaults. stop, status and start read it; the environment wins.\n'
        printf 'A4C_VAR_DIR=%q\n' "$VAR_DIR"
        for name in "${STACK_SETTINGS[@]}"; do
            if [[ -n "${!name:-}" ]]; then printf '%s=%q\n' "$name" "${!name}"; fi
        done
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$STACK_FILE"
}

# stack_command ARGUMENT...: the exact services.sh command line for this stack, its var dir
# and settings spelled out, to print as a hint that works from any directory and shell.
stack_command() {
    local name words=("A4C_VAR_DIR=$(printf '%q' "$VAR_DIR")")
    for name in "${STACK_SETTINGS[@]}"; do
        if [[ -n "${!name:-}" ]]; then words+=("$name=$(printf '%q' "${!name}")"); fi
    done
    printf '%s bash %q' "${words[*]}" "$SCRIPTS_DIR/services.sh"
    if (($# > 0)); then printf ' %q' "$@"; fi
    printf '\n'
}

# --- what a run started, stopped at its end (test.sh) ---------------------------------------
# The caller defines service_is_ours SERVICE (it runs, started by these scripts),
# stop_service SERVICE and service_stop_command SERVICE (the command a person would type).

# running_services SERVICE...: those that run now, started by these scripts, on one line.
running_services() {
    local service running=()
    for service in "$@"; do
        if service_is_ours "$service"; then running+=("$service"); fi
    done
    printf '%s\n' "${running[*]}"
}

# stop_services_started_since BEFORE SERVICE...: stops, last first, each SERVICE that runs
# now and was not in BEFORE (what running_services printed when the run began), unless
# A4C_KEEP_SERVICES=1; then its last lines say what it left running and how to stop it. A
# stop that fails is said, never fatal: the caller's exit status stays its own. (Another run
# that started a service meanwhile from the same var dir loses it too: one run per var dir.)
stop_services_started_since() {
    local before=" $1 " index service stopped=() left=()
    shift
    for ((index = $# ; index >= 1; index--)); do
        service="${!index}"
        service_is_ours "$service" || continue
        if [[ "$before" == *" $service "* || "${A4C_KEEP_SERVICES:-}" == 1 ]]; then
            left+=("$service")
        elif (stop_service "$service"); then
            stopped+=("$service")
        else
            warn "could not stop $service, which this run started"
            left+=("$service")
        fi
    done
    if ((${#stopped[@]} > 0)); then
        say "stopped what this run started: ${stopped[*]}"
    fi
    if ((${#left[@]} == 0)); then
        say "none of $* is left running"
        return 0
    fi
    if [[ "${A4C_KEEP_SERVICES:-}" == 1 ]]; then
        say "left running (A4C_KEEP_SERVICES=1): ${left[*]}; stop them with:"
    else
        say "left running, as they ran before this run began or would not stop: ${left[*]}; stop them with:"
    fi
    for service in "${left[@]}"; do
        printf '    %s\n' "$(service_stop_command "$service")"
    done
}

say() {
    printf '==> %s\n' "$*"
}

warn() {
    printf 'WARNING: %s\n' "$*" >&2
}

# die MESSAGE [LOGFILE...]: print the message and the end of each log that exists, exit 1.
die() {
    local message="$1" log
    shift
    printf '\nERROR: %s\n' "$message" >&2
    for log in "$@"; do
        if [[ -s "$log" ]]; then
            printf -- '--- last %s lines of %s ---\n' "$LOG_TAIL_LINES" "$log" >&2
            tail -n "$LOG_TAIL_LINES" "$log" >&2
            printf -- '---\n' >&2
        fi
    done
    exit 1
}

# run_logged LOGFILE DESCRIPTION COMMAND...: run quietly, appending output to LOGFILE;
# on failure show its end.
run_logged() {
    local log="$1" description="$2" status=0
    shift 2
    mkdir -p "$(dirname "$log")"
    say "$description"
    printf '\n### %s: %s\n### %s\n' "$(date '+%F %T')" "$description" "$*" >>"$log"
    "$@" >>"$log" 2>&1 || status=$?
    if [[ $status -ne 0 ]]; then
        die "$description failed (exit $status). Full log: $log" "$log"
    fi
}

# wait_until SECONDS COMMAND...: true as soon as COMMAND succeeds, false after SECONDS.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 1
    done
}

# Prints the pid recorded in a pid file if that process is alive; fails otherwise.
live_pid() {
    local pid
    [[ -r "$1" ]] || return 1
    pid="$(tr -dc '0-9' <"$1")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Names the process listening on a port, as far as ss can tell.
describe_port() {
    local who=""
    if command -v ss >/dev/null; then
        who="$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(.*)' | head -n 1 || true)"
    fi
    printf '%s\n' "${who:-an unknown process}"
}

# Runs a command with root rights: directly as root, through sudo otherwise (never prompting).
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        die "this step needs root rights: $*  (run it as root, or give this user password-less sudo)"
    fi
}

as_es_user() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u "$ES_USER" -- "$@"
    else
        "$@"
    fi
}

es_major_version() {
    printf '%s\n' "$ES_MAJOR"
}

# Prints the JDK to run Elasticsearch with, A4C_ES_JAVA_HOME if set. 8.x runs on the oldest
# JDK from 17 up (what it was built for); 9.x needs 21 or newer and gets the newest one found.
es_java_home() {
    if [[ -n "${A4C_ES_JAVA_HOME:-}" ]]; then
        printf '%s\n' "$A4C_ES_JAVA_HOME"
        return
    fi
    local major minimum dir version chosen="" chosen_version=""
    major="$(es_major_version)"
    if ((major <= 8)); then minimum=17; else minimum=21; fi
    for dir in /usr/lib/jvm/*; do
        [[ -L "$dir" || ! -x "$dir/bin/java" || ! -r "$dir/release" ]] && continue
        version="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$dir/release")"
        if [[ -z "$version" ]] || ((version < minimum)); then
            continue
        fi
        if [[ -z "$chosen" ]] ||
            { ((major <= 8)) && ((version < chosen_version)); } ||
            { ((major > 8)) && ((version > chosen_version)); }; then
            chosen="$dir"
            chosen_version="$version"
        fi
    done
    [[ -n "$chosen" ]] || return 1
    printf '%s\n' "$chosen"
}

# Prints the JDK 17 Alien4Cloud is built and run with (its poms target release 15 and its
# libraries are not ready for newer JDKs), A4C_ALIEN4CLOUD_JAVA_HOME if set.
alien4cloud_java_home() {
    local dir
    if [[ -n "${A4C_ALIEN4CLOUD_JAVA_HOME:-}" ]]; then
        printf '%s\n' "$A4C_ALIEN4CLOUD_JAVA_HOME"
        return
    fi
    for dir in /usr/lib/jvm/*; do
        [[ -L "$dir" || ! -x "$dir/bin/java" || ! -r "$dir/release" ]] && continue
        if grep -q '^JAVA_VERSION="17[."]' "$dir/release"; then
            printf '%s\n' "$dir"
            return
        fi
    done
    return 1
}

es_minimum_java() {
    if (($(es_major_version) <= 8)); then echo 17; else echo 21; fi
}

# Creates the directories Elasticsearch writes to and hands them to the ES user. The
# path.repo root stays readable by everyone (root's tests read snapshots there) and, where
# ACLs work, directories root creates inside it stay writable by Elasticsearch.
prepare_es_dirs() {
    mkdir -p "$ES_VAR_DIR"/{config,data,logs,run} "$ES_PATH_REPO"
    # chmod before setfacl: chmod would narrow the ACL mask again.
    chmod 0755 "$ES_VAR_DIR" "$ES_PATH_REPO"
    if [[ $EUID -eq 0 ]]; then
        find "$ES_VAR_DIR" "$ES_PATH_REPO" ! -user "$ES_USER" -exec chown "$ES_USER:$ES_USER" {} +
        if command -v setfacl >/dev/null; then
            setfacl -m "u:$ES_USER:rwx" -m "d:u:$ES_USER:rwx" "$ES_PATH_REPO" 2>/dev/null ||
                warn "could not set an ACL on $ES_PATH_REPO; directories root creates there will not be writable by $ES_USER"
        fi
    fi
}

#!/usr/bin/env bash
# Starts, stops and reports the local services a4c-backup needs, each as a background
# process with its pid file under var/ (Elasticsearch keeps its own under var/es/run).
# Only processes these scripts started are ever stopped; a service something else already
# runs on the wanted port is reported, never touched.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ALL_SERVICES=(es redis worker beat web)
DEFAULT_START=(es redis)
# Every service in start order. a4c, the real Alien4Cloud, is started only when named: its
# first start builds it (about 3 min) and it holds about 800 MB; so is s3 (S3Proxy, the
# bucket of off-site copies), which only the off-site tests and a developer trying them need. "stop all" and "status"
# include it, since they only ever touch what these scripts started.
SERVICE_ORDER=(es redis s3 a4c worker beat web)
ES_START_TIMEOUT="${A4C_ES_START_TIMEOUT:-120}"
# How long a starting service may take to write its pid file; Elasticsearch writes it late,
# later still when several nodes start at once on a small machine.
PID_FILE_GRACE=15
STOP_TIMEOUT=120

usage() {
    cat <<EOF
Usage: scripts/services.sh start|stop|status|restart [SERVICE...]
       scripts/services.sh env a4c

Services: es (Elasticsearch $ES_VERSION), redis, worker (Celery), beat (Celery scheduler),
web (waitress), a4c (the real Alien4Cloud $ALIEN4CLOUD_VERSION, built on first start),
s3 (S3Proxy $S3PROXY_VERSION on port $S3_PORT, an S3 bucket server for off-site copies), all.
start and restart default to "es redis"; stop and status to all. "start all" and
"restart all" leave a4c and s3 out; "stop all" and "status" include them.
"env a4c" prints the settings that point the console at that Alien4Cloud.

start and restart remember the var dir (A4C_VAR_DIR) and the settings given (ports,
A4C_ES_VERSION, A4C_ES_PATH_REPO) in $STACK_FILE; stop, status and the next start of
that var dir use them when the environment gives none, so
  A4C_VAR_DIR=$VAR_DIR bash $SCRIPTS_DIR/services.sh stop
stops that stack, whatever ports it was started on.
EOF
}

# Prints the pid from a pid file if that process is alive and its command line mentions
# PATTERN, so a recycled pid never gets stopped by mistake.
service_pid() {
    local pidfile="$1" pattern="$2" pid
    pid="$(live_pid "$pidfile")" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    printf '%s\n' "$pid"
}

# wait_for_service NAME PIDFILE TIMEOUT READY_FUNCTION LOG...: waits until the process
# runs and READY_FUNCTION succeeds; dies with the logs if it exits or times out.
wait_for_service() {
    local name="$1" pidfile="$2" timeout="$3" ready="$4"
    shift 4
    local started="$SECONDS" seen=""
    while true; do
        # Liveness only: a process may rewrite its command line while it starts.
        if live_pid "$pidfile" >/dev/null; then
            seen=yes
            if "$ready"; then
                return 0
            fi
        elif [[ -n "$seen" || -s "$pidfile" ]] || ((SECONDS - started > PID_FILE_GRACE)); then
            die "$name exited while starting." "$@"
        fi
        if ((SECONDS - started >= timeout)); then
            die "$name did not become ready within $timeout s." "$@"
        fi
        sleep 1
    done
}

# A zombie counts as gone: it has exited and only waits for its parent to reap it.
pid_gone() {
    ! kill -0 "$1" 2>/dev/null ||
        [[ "$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)" == Z ]]
}

stop_pid() {
    local name="$1" pid="$2"
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # A Celery worker finishes its running tasks first; never cut a restore short.
    if ! wait_until "$STOP_TIMEOUT" pid_gone "$pid"; then
        die "$name (pid $pid) is still running after $STOP_TIMEOUT s. Look at its log, or force it with: kill -9 $pid"
    fi
}

require_venv() {
    [[ -x "$VENV/bin/celery" && -x "$VENV/bin/waitress-serve" ]] ||
        die "the virtualenv $VENV is missing or incomplete: run scripts/setup.sh"
}

# --- Elasticsearch -------------------------------------------------------------------------

ES_LOG="$ES_VAR_DIR/logs/a4c-local.log"
ES_START_LOG="$LOG_DIR/elasticsearch-$ES_VERSION-start.log"

# Not GET /: the minimal distributions do not serve it, and 6.x sends no X-Elastic-Product.
es_answers() {
    curl -s -m 3 "$ES_URL/_cluster/health?filter_path=cluster_name" 2>/dev/null |
        grep -q '"cluster_name"'
}

es_healthy() {
    curl -sf -m 10 -o /dev/null "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=5s"
}

# Prints "pid<TAB>path.repo<TAB>description" of the node answering on ES_PORT.
es_node_facts() {
    curl -s -m 5 "$ES_URL/_nodes/_local/settings,process?filter_path=cluster_name,nodes.*.name,nodes.*.version,nodes.*.process.id,nodes.*.settings.path.repo" |
        python3 -c '
import json, sys
try:
    data = json.load(sys.stdin)
except ValueError:
    data = {}
node = next(iter(data.get("nodes", {}).values()), {})
repo = node.get("settings", {}).get("path", {}).get("repo", [])
repo = [repo] if isinstance(repo, str) else repo
description = "node %s of cluster %s, version %s" % (
    node.get("name", "?"), data.get("cluster_name", "?"), node.get("version", "?"))
print(node.get("process", {}).get("id", ""), ",".join(repo), description, sep="\t")
'
}

write_es_config() {
    local config="$ES_VAR_DIR/config" entry
    # jvm.options, log4j2.properties and friends come from the distribution in use, so
    # switching A4C_ES_VERSION switches them too; the keystore ES creates here is kept.
    for entry in "$ES_HOME"/config/*; do
        [[ "$(basename "$entry")" == elasticsearch.yml ]] && continue
        rm -rf "${config:?}/$(basename "$entry")"
        cp -R "$entry" "$config/"
    done
    # 6.x and 7.x start Java from their install directory, where the distribution's relative
    # GC log and heap dump paths are not writable: point them into ES_VAR_DIR.
    sed -i -e "s#\([=:]\)logs/#\1$ES_VAR_DIR/logs/#g" \
        -e "s#HeapDumpPath=data\$#HeapDumpPath=$ES_VAR_DIR/data#" "$config/jvm.options"
    cat >"$config/elasticsearch.yml" <<EOF
# Written by scripts/services.sh at every start: change the script, not this file.
cluster.name: a4c-local
node.name: es-1
network.host: 127.0.0.1
http.port: $ES_PORT
transport.port: $ES_TRANSPORT_PORT
discovery.type: single-node
path.data: "$ES_VAR_DIR/data"
path.logs: "$ES_VAR_DIR/logs"
path.repo: ["$ES_PATH_REPO"]
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
    if [[ "$ES_MAJOR" == 6 ]]; then
        # The full distribution's machine learning starts a native controller nobody needs.
        printf 'xpack.ml.enabled: false\n' >>"$config/elasticsearch.yml"
    fi
    if [[ $EUID -eq 0 ]]; then
        chown -R "$ES_USER:$ES_USER" "$config"
    fi
}

launch_es() {
    local java_home
    if [[ ! -x "$ES_HOME/bin/elasticsearch" ]] || ! id "$ES_USER" >/dev/null 2>&1; then
        bash "$SCRIPTS_DIR/install-es.sh"
    fi
    java_home="$(es_java_home)" ||
        die "no JDK $(es_minimum_java)+ found for Elasticsearch $ES_VERSION: install one or set A4C_ES_JAVA_HOME"
    if port_in_use "$ES_PORT"; then
        die "port $ES_PORT is taken by $(describe_port "$ES_PORT"), which does not answer as Elasticsearch. Free it or set A4C_ES_PORT."
    fi
    if port_in_use "$ES_TRANSPORT_PORT"; then
        die "transport port $ES_TRANSPORT_PORT is taken by $(describe_port "$ES_TRANSPORT_PORT"). Free it or set A4C_ES_TRANSPORT_PORT."
    fi

    prepare_es_dirs
    write_es_config
    rm -f "$ES_PID_FILE"
    mkdir -p "$LOG_DIR"
    say "starting Elasticsearch $ES_VERSION as $ES_USER (Java: $java_home)"
    # A clean environment: a JAVA_HOME or ES_* variable of the caller must not leak in.
    if ! (cd "$ES_VAR_DIR" && umask 022 && as_es_user env -i \
        PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME="$ES_VAR_DIR" \
        ES_PATH_CONF="$ES_VAR_DIR/config" ES_JAVA_HOME="$java_home" JAVA_HOME="$java_home" \
        ES_JAVA_OPTS="${A4C_ES_JAVA_OPTS:--Xms512m -Xmx512m}" \
        "$ES_HOME/bin/elasticsearch" -d -p "$ES_PID_FILE") >"$ES_START_LOG" 2>&1; then
        die "Elasticsearch failed to start." "$ES_START_LOG" "$ES_LOG"
    fi
}

start_es() {
    local pid node_pid node_repo description
    if es_answers; then
        IFS=$'\t' read -r node_pid node_repo description < <(es_node_facts) || true
        pid="$(service_pid "$ES_PID_FILE" org.elasticsearch)" || pid=""
        if [[ -z "$pid" || "$node_pid" != "$pid" ]]; then
            die "port $ES_PORT is already served by an Elasticsearch that is not the one of $VAR_DIR (no matching pid file in $ES_VAR_DIR/run): $description, pid ${node_pid:-unknown}, path.repo '${node_repo:-unset}'. Stop it, or run this one on other ports with A4C_ES_PORT and A4C_ES_TRANSPORT_PORT."
        fi
        if [[ "$node_repo" != "$ES_PATH_REPO" ]]; then
            die "our Elasticsearch (pid $pid) on port $ES_PORT has path.repo '$node_repo', not '$ES_PATH_REPO'. Run: scripts/services.sh restart es"
        fi
        say "Elasticsearch already running (pid $pid): $ES_URL"
        return
    fi
    if pid="$(service_pid "$ES_PID_FILE" org.elasticsearch)"; then
        say "Elasticsearch (pid $pid) is starting; waiting for it"
    else
        launch_es
    fi
    PID_FILE_GRACE="$ES_START_TIMEOUT" wait_for_service Elasticsearch "$ES_PID_FILE" \
        "$ES_START_TIMEOUT" es_healthy "$ES_START_LOG" "$ES_LOG"
    say "Elasticsearch $ES_VERSION is up: $ES_URL (path.repo $ES_PATH_REPO)"
}

stop_es() {
    local pid
    if pid="$(service_pid "$ES_PID_FILE" org.elasticsearch)"; then
        stop_pid Elasticsearch "$pid"
    elif es_answers; then
        say "the Elasticsearch on port $ES_PORT was not started by these scripts: left running"
    else
        say "Elasticsearch is not running"
    fi
}

status_es() {
    local pid health
    health="$(curl -s -m 3 "$ES_URL/_cluster/health?filter_path=status" 2>/dev/null |
        sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')" || true
    if pid="$(service_pid "$ES_PID_FILE" org.elasticsearch)"; then
        print_status es running "pid $pid" "$ES_URL (Elasticsearch $ES_VERSION, health ${health:-unknown})"
    elif es_answers; then
        print_status es running "not ours" "$ES_URL (health ${health:-unknown})"
    else
        print_status es stopped "" ""
    fi
}

# --- Redis ---------------------------------------------------------------------------------

REDIS_PID_FILE="$RUN_DIR/redis.pid"
REDIS_LOG="$LOG_DIR/redis.log"
REDIS_START_LOG="$LOG_DIR/redis-start.log"

redis_answers() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 reply <&3 || exit 1
        [[ "$reply" == "+PONG"* ]]
    ) 2>/dev/null
}

start_redis() {
    local pid
    if redis_answers; then
        if pid="$(service_pid "$REDIS_PID_FILE" redis-server)"; then
            say "Redis already running (pid $pid): $REDIS_URL"
        else
            say "a Redis these scripts did not start already answers on port $REDIS_PORT: using it"
        fi
        return
    fi
    if port_in_use "$REDIS_PORT"; then
        die "port $REDIS_PORT is taken by $(describe_port "$REDIS_PORT"), which does not answer as Redis. Free it or set A4C_REDIS_PORT."
    fi
    command -v redis-server >/dev/null || die "redis-server is not installed: run scripts/setup.sh"
    mkdir -p "$VAR_DIR/redis" "$RUN_DIR" "$LOG_DIR"
    rm -f "$REDIS_PID_FILE"
    say "starting Redis on port $REDIS_PORT"
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
        --dir "$VAR_DIR/redis" --pidfile "$REDIS_PID_FILE" --logfile "$REDIS_LOG" \
        >"$REDIS_START_LOG" 2>&1 || die "Redis failed to start." "$REDIS_START_LOG" "$REDIS_LOG"
    wait_for_service Redis "$REDIS_PID_FILE" 20 redis_answers "$REDIS_START_LOG" "$REDIS_LOG"
    say "Redis is up: $REDIS_URL"
}

stop_redis() {
    local pid
    if pid="$(service_pid "$REDIS_PID_FILE" redis-server)"; then
        stop_pid Redis "$pid"
    elif redis_answers; then
        say "the Redis on port $REDIS_PORT was not started by these scripts: left running"
    else
        say "Redis is not running"
    fi
}

status_redis() {
    local pid
    if pid="$(service_pid "$REDIS_PID_FILE" redis-server)"; then
        print_status redis running "pid $pid" "$REDIS_URL"
    elif redis_answers; then
        print_status redis running "not ours" "$REDIS_URL"
    else
        print_status redis stopped "" ""
    fi
}

# --- Celery worker and beat ----------------------------------------------------------------

WORKER_PID_FILE="$RUN_DIR/worker.pid"
WORKER_LOG="$LOG_DIR/worker.log"
WORKER_NAME="a4c-worker@$(uname -n)"
BEAT_PID_FILE="$RUN_DIR/beat.pid"
BEAT_LOG="$LOG_DIR/beat.log"

worker_answers() {
    (cd "$PROJECT_DIR" && "$VENV/bin/celery" -A a4c_backup inspect ping \
        --destination "$WORKER_NAME" --timeout 3) >/dev/null 2>&1
}

beat_settled() {
    # beat has no endpoint to ask; alive a few seconds after starting is the best sign.
    sleep 3
    service_pid "$BEAT_PID_FILE" celery >/dev/null
}

# start_celery NAME PIDFILE LOGFILE READY_FUNCTION CELERY_ARGUMENTS...
start_celery() {
    local name="$1" pidfile="$2" logfile="$3" ready="$4" pid
    shift 4
    local start_log="$LOG_DIR/$name-start.log"
    if pid="$(service_pid "$pidfile" celery)"; then
        say "Celery $name already running (pid $pid)"
        return
    fi
    require_venv
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    rm -f "$pidfile"
    say "starting Celery $name"
    (cd "$PROJECT_DIR" && "$VENV/bin/celery" --workdir "$PROJECT_DIR" -A a4c_backup "$@" --detach \
        --loglevel INFO --pidfile "$pidfile" --logfile "$logfile") >"$start_log" 2>&1 ||
        die "Celery $name failed to start." "$start_log" "$logfile"
    wait_for_service "Celery $name" "$pidfile" 60 "$ready" "$start_log" "$logfile"
    say "Celery $name is up (log: $logfile)"
}

start_worker() {
    start_celery worker "$WORKER_PID_FILE" "$WORKER_LOG" worker_answers \
        worker --hostname "$WORKER_NAME" --concurrency 2
}

start_beat() {
    start_celery beat "$BEAT_PID_FILE" "$BEAT_LOG" beat_settled \
        beat --schedule "$RUN_DIR/celerybeat-schedule"
}

stop_celery() {
    local name="$1" pidfile="$2" pid
    if pid="$(service_pid "$pidfile" celery)"; then
        stop_pid "Celery $name" "$pid"
    else
        say "Celery $name is not running"
    fi
}

status_celery() {
    local name="$1" pidfile="$2" logfile="$3" pid
    if pid="$(service_pid "$pidfile" celery)"; then
        print_status "$name" running "pid $pid" "log $logfile"
    else
        print_status "$name" stopped "" ""
    fi
}

stop_worker() { stop_celery worker "$WORKER_PID_FILE"; }
stop_beat() { stop_celery beat "$BEAT_PID_FILE"; }
status_worker() { status_celery worker "$WORKER_PID_FILE" "$WORKER_LOG"; }
status_beat() { status_celery beat "$BEAT_PID_FILE" "$BEAT_LOG"; }

# --- S3Proxy (an S3-compatible server for off-site copies) -------------------------------

S3_PID_FILE="$RUN_DIR/s3proxy.pid"
S3_LOG="$LOG_DIR/s3proxy.log"
S3_PROPERTIES="$S3_VAR_DIR/s3proxy.properties"
S3_MAIN_PATTERN="s3proxy-$S3PROXY_VERSION"

# Any HTTP answer will do: without credentials S3Proxy answers 403, which proves it serves.
s3_answers() {
    local code
    code="$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$S3_URL/" 2>/dev/null)" || true
    [[ -n "$code" && "$code" != 000 ]]
}

# The properties file, written at every start (its credential is readable by us alone).
write_s3_properties() {
    mkdir -p "$S3_VAR_DIR/data"
    (
        umask 077
        cat >"$S3_PROPERTIES" <<EOF
# Written by scripts/services.sh at every start: change the script, not this file.
s3proxy.endpoint=http://127.0.0.1:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_IDENTITY
s3proxy.credential=$S3_CREDENTIAL
jclouds.provider=filesystem
jclouds.filesystem.basedir=$S3_VAR_DIR/data
EOF
    )
}

start_s3() {
    local pid java_home
    if pid="$(service_pid "$S3_PID_FILE" "$S3_MAIN_PATTERN")"; then
        if s3_answers; then
            say "S3Proxy already running (pid $pid): $S3_URL"
            return
        fi
        say "S3Proxy (pid $pid) is starting; waiting for it"
    elif port_in_use "$S3_PORT"; then
        die "port $S3_PORT is taken by $(describe_port "$S3_PORT"), not the S3Proxy of $VAR_DIR (no matching pid file $S3_PID_FILE): stop it, or set A4C_S3_PORT."
    else
        bash "$SCRIPTS_DIR/install-s3proxy.sh"
        java_home="$(alien4cloud_java_home)" ||
            die "no JDK 17 found for S3Proxy: install one or set A4C_ALIEN4CLOUD_JAVA_HOME"
        write_s3_properties
        mkdir -p "$RUN_DIR" "$LOG_DIR"
        rm -f "$S3_PID_FILE"
        printf '\n### %s: starting S3Proxy %s on port %s\n' "$(date '+%F %T')" "$S3PROXY_VERSION" "$S3_PORT" >>"$S3_LOG"
        say "starting S3Proxy $S3PROXY_VERSION on port $S3_PORT (Java: $java_home; log: $S3_LOG)"
        # Its own session and pid file, its output in the log, a clean environment.
        # shellcheck disable=SC2016  # expanded by the inner bash
        (cd "$S3_VAR_DIR" && exec setsid -f bash -c 'echo $$ >"$1" && shift && exec "$@"' \
            _ "$S3_PID_FILE" env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
            HOME="$S3_VAR_DIR" JAVA_HOME="$java_home" \
            "$java_home/bin/java" -Xmx256m -jar "$S3PROXY_JAR" --properties "$S3_PROPERTIES") \
            </dev/null >>"$S3_LOG" 2>&1 || die "S3Proxy failed to start." "$S3_LOG"
    fi
    wait_for_service S3Proxy "$S3_PID_FILE" 60 s3_answers "$S3_LOG"
    say "S3Proxy $S3PROXY_VERSION is up: $S3_URL (identity $S3_IDENTITY, objects in $S3_VAR_DIR/data)"
}

stop_s3() {
    local pid
    if pid="$(service_pid "$S3_PID_FILE" "$S3_MAIN_PATTERN")"; then
        stop_pid S3Proxy "$pid"
    elif port_in_use "$S3_PORT"; then
        say "the server on port $S3_PORT was not started by these scripts: left running"
    else
        say "S3Proxy is not running"
    fi
}

status_s3() {
    local pid
    if pid="$(service_pid "$S3_PID_FILE" "$S3_MAIN_PATTERN")"; then
        print_status s3 running "pid $pid" "$S3_URL (S3Proxy $S3PROXY_VERSION)"
    elif s3_answers; then
        print_status s3 running "not ours" "$S3_URL"
    else
        print_status s3 stopped "" ""
    fi
}

# --- Web (waitress, through a4c_backup/serve.py) ------------------------------------------
# waitress reads each request whole before a thread sees it: slow or idle clients cannot
# freeze the console. It writes no access log: the reverse proxy in front keeps that one.

WEB_PID_FILE="$RUN_DIR/web.pid"
WEB_LOG="$LOG_DIR/web.log"
WEB_SERVER_PATTERN=a4c_backup.serve

web_answers() {
    local code
    code="$(curl -s -o /dev/null -m 5 -w '%{http_code}' "${WEB_URL}healthz" 2>/dev/null)" || true
    [[ -n "$code" && "$code" != 000 ]]
}

start_web() {
    local pid
    if pid="$(service_pid "$WEB_PID_FILE" "$WEB_SERVER_PATTERN")"; then
        say "web already running (pid $pid): $WEB_URL"
        return
    fi
    if port_in_use "$WEB_PORT"; then
        die "port $WEB_PORT is taken by $(describe_port "$WEB_PORT"). Free it or set A4C_WEB_PORT."
    fi
    require_venv
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    rm -f "$WEB_PID_FILE"
    printf '\n### %s: starting the web console on port %s\n' "$(date '+%F %T')" "$WEB_PORT" >>"$WEB_LOG"
    say "starting the web console on port $WEB_PORT (log: $WEB_LOG)"
    # Its own session and pid file (waitress has no daemon mode), its output in the log.
    # shellcheck disable=SC2016  # expanded by the inner bash
    (cd "$PROJECT_DIR" && exec setsid -f bash -c 'echo $$ >"$1" && shift && exec "$@"' \
        _ "$WEB_PID_FILE" "$VENV/bin/python" -m "$WEB_SERVER_PATTERN" \
        --host 127.0.0.1 --port "$WEB_PORT") </dev/null >>"$WEB_LOG" 2>&1 ||
        die "the web server failed to start." "$WEB_LOG"
    wait_for_service "the web server" "$WEB_PID_FILE" 60 web_answers "$WEB_LOG"
    say "web console is up: $WEB_URL"
}

stop_web() {
    local pid
    if pid="$(service_pid "$WEB_PID_FILE" "$WEB_SERVER_PATTERN")"; then
        stop_pid "the web server" "$pid"
    else
        say "the web server is not running"
    fi
}

status_web() {
    local pid
    if pid="$(service_pid "$WEB_PID_FILE" "$WEB_SERVER_PATTERN")"; then
        print_status web running "pid $pid" "$WEB_URL"
    else
        print_status web stopped "" ""
    fi
}

# --- Alien4Cloud (the real 3.7.0 REST server) ----------------------------------------------

ALIEN4CLOUD_CONFIG_DIR="$ALIEN4CLOUD_VAR_DIR/config"
ALIEN4CLOUD_PID_FILE="$RUN_DIR/alien4cloud.pid"
ALIEN4CLOUD_LOG="$LOG_DIR/alien4cloud.log"
ALIEN4CLOUD_MAIN=alien4cloud.Application
# Java 17 closes what its libraries (Spring 4, Elasticsearch 6.8, the LDAP context source)
# reach into.
ALIEN4CLOUD_JAVA_MODULE_OPTIONS=(
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.net=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED
    --add-opens java.base/java.text=ALL-UNNAMED
    --add-opens java.base/java.time=ALL-UNNAMED
    --add-opens java.base/java.math=ALL-UNNAMED
    --add-exports java.naming/com.sun.jndi.ldap=ALL-UNNAMED
)

# Our Alien4Cloud's pid: its command line names this checkout's config folder, so another
# checkout's Alien4Cloud, or a recycled pid, never counts.
alien4cloud_pid() {
    service_pid "$ALIEN4CLOUD_PID_FILE" "$ALIEN4CLOUD_CONFIG_DIR"
}

alien4cloud_healthy() {
    [[ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$ALIEN4CLOUD_URL/rest/admin/health" 2>/dev/null)" == 200 ]]
}

# The configuration folder, written at every start: Alien4Cloud's own alien4cloud-config.yml
# from the built source with our directories and port, the embedded Elasticsearch node's
# elasticsearch.yml, and a log4j2.xml that logs to the console (captured in ALIEN4CLOUD_LOG).
write_alien4cloud_config() {
    local config="$ALIEN4CLOUD_CONFIG_DIR"
    mkdir -p "$config" "$ALIEN4CLOUD_DATA_DIR" "$ALIEN4CLOUD_VAR_DIR"/{init,es,tmp} \
        "$ALIEN4CLOUD_ES_PATH_REPO"
    python3 - "$ALIEN4CLOUD_SRC/alien4cloud-rest-api/src/main/resources/alien4cloud-config.yml" \
        "$config/alien4cloud-config.yml" "$ALIEN4CLOUD_PORT" "$ALIEN4CLOUD_DATA_DIR" \
        "$ALIEN4CLOUD_VAR_DIR/init" <<'EOF_PYTHON'
import re
import sys

source, target, port, data_dir, init_dir = sys.argv[1:]
# (top-level section, key) -> value; each must be found exactly once.
changes = {
    ("server", "port"): port,
    ("directories", "alien"): f'"{data_dir}"',
    ("directories", "alien_init"): f'"{init_dir}"',
}
found = set()
section = None
lines = []
for line in open(source, encoding="utf-8"):
    top = re.match(r"([A-Za-z_][\w.-]*):", line)
    if top:
        section = top.group(1)
    entry = re.match(r"(  )([\w.-]+):(\s.*)?$", line)
    if entry and (section, entry.group(2)) in changes:
        key = (section, entry.group(2))
        found.add(key)
        line = f"  {key[1]}: {changes[key]}\n"
    lines.append(line)
missing = set(changes) - found
if missing:
    sys.exit(f"{source} has no {sorted(missing)}: the template changed, update services.sh")
with open(target, "w", encoding="utf-8") as out:
    out.write("# Written by scripts/services.sh at every start from Alien4Cloud's own file:\n")
    out.write("# change the script, not this file.\n")
    out.writelines(lines)
EOF_PYTHON
    # Alien4Cloud queries its indices as soon as the node runs, without waiting for them to
    # recover: all primaries recover at once, not 4 at a time.
    # The embedded node: its REST port for the backup tool, and a cluster of its own. Without
    # single-node discovery it pings the transport ports 9300-9305 and joins any other
    # "escluster" there: another checkout's Alien4Cloud then shares (and moves) its shards.
    cat >"$config/elasticsearch.yml" <<EOF
# Written by scripts/services.sh at every start: change the script, not this file.
cluster.name: escluster
node.name: alien
path.home: "$ALIEN4CLOUD_VAR_DIR/es"
path.data: "$ALIEN4CLOUD_VAR_DIR/es/data"
path.logs: "$ALIEN4CLOUD_VAR_DIR/es/logs"
path.repo: ["$ALIEN4CLOUD_ES_PATH_REPO"]
transport.type: mock-socket-network
transport.tcp.port: $ALIEN4CLOUD_ES_TRANSPORT_PORT
discovery.type: single-node
http.enabled: true
http.port: $ALIEN4CLOUD_ES_PORT
network.host: 127.0.0.1
cluster.routing.allocation.disk.threshold_enabled: false
cluster.routing.allocation.node_initial_primaries_recoveries: 100
EOF
    cat >"$config/log4j2.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/services.sh at every start: change the script, not this file. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="console" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{ISO8601} %-5p [%t] %c{1.}: %m%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="alien4cloud" level="info"/>
    <Logger name="org.alien4cloud" level="info"/>
    <Logger name="org.springframework" level="warn"/>
    <Logger name="org.eclipse.jetty" level="warn"/>
    <Root level="info">
      <AppenderRef ref="console"/>
    </Root>
  </Loggers>
</Configuration>
EOF
}

launch_a4c() {
    local java_home classpath
    local -a java_options
    read -r -a java_options <<<"${A4C_ALIEN4CLOUD_JAVA_OPTS:--Xms256m -Xmx1g}"
    bash "$SCRIPTS_DIR/install-a4c.sh"
    java_home="$(alien4cloud_java_home)" ||
        die "no JDK 17 found for Alien4Cloud: install one or set A4C_ALIEN4CLOUD_JAVA_HOME"
    if port_in_use "$ALIEN4CLOUD_ES_PORT"; then
        die "port $ALIEN4CLOUD_ES_PORT, for Alien4Cloud's embedded Elasticsearch, is taken by $(describe_port "$ALIEN4CLOUD_ES_PORT"). Free it or set A4C_ALIEN4CLOUD_ES_PORT."
    fi
    if port_in_use "$ALIEN4CLOUD_ES_TRANSPORT_PORT"; then
        die "port $ALIEN4CLOUD_ES_TRANSPORT_PORT, the transport of Alien4Cloud's embedded Elasticsearch, is taken by $(describe_port "$ALIEN4CLOUD_ES_TRANSPORT_PORT"). Free it or set A4C_ALIEN4CLOUD_ES_TRANSPORT_PORT."
    fi
    write_alien4cloud_config
    # The configuration folder first, so its alien4cloud-config.yml, elasticsearch.yml and
    # log4j2.xml win over the copies inside the jars.
    classpath="$ALIEN4CLOUD_CONFIG_DIR:$(paste -sd: "$ALIEN4CLOUD_CLASSPATH_FILE")"
    mkdir -p "$RUN_DIR" "$LOG_DIR"
    rm -f "$ALIEN4CLOUD_PID_FILE"
    printf '\n### %s: starting Alien4Cloud %s\n' "$(date '+%F %T')" "$ALIEN4CLOUD_VERSION" >>"$ALIEN4CLOUD_LOG"
    say "starting Alien4Cloud $ALIEN4CLOUD_VERSION on port $ALIEN4CLOUD_PORT (Java: $java_home; log: $ALIEN4CLOUD_LOG)"
    # Its own session, its output in the log and nothing inherited: run as the backup tool's
    # restart command, it must outlive the command and hold none of its pipes. A clean
    # environment: the caller's JAVA_TOOL_OPTIONS or CLASSPATH must not leak in.
    # shellcheck disable=SC2016  # expanded by the inner bash
    (cd "$ALIEN4CLOUD_VAR_DIR" && umask 022 && exec setsid -f bash -c 'echo $$ >"$1" && shift && exec "$@"' \
        _ "$ALIEN4CLOUD_PID_FILE" env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
        HOME="$ALIEN4CLOUD_VAR_DIR" JAVA_HOME="$java_home" \
        "$java_home/bin/java" "${java_options[@]}" \
        "${ALIEN4CLOUD_JAVA_MODULE_OPTIONS[@]}" -Djava.io.tmpdir="$ALIEN4CLOUD_VAR_DIR/tmp" \
        -cp "$classpath" "$ALIEN4CLOUD_MAIN") </dev/null >>"$ALIEN4CLOUD_LOG" 2>&1
}

start_a4c() {
    local pid
    if pid="$(alien4cloud_pid)"; then
        if alien4cloud_healthy; then
            say "Alien4Cloud already running (pid $pid): $ALIEN4CLOUD_URL"
            return
        fi
        say "Alien4Cloud (pid $pid) is starting; waiting for it"
    elif port_in_use "$ALIEN4CLOUD_PORT"; then
        die "port $ALIEN4CLOUD_PORT is taken by $(describe_port "$ALIEN4CLOUD_PORT"), not the Alien4Cloud of $VAR_DIR (no matching pid file $ALIEN4CLOUD_PID_FILE): stop it, or set A4C_ALIEN4CLOUD_PORT."
    else
        launch_a4c
    fi
    wait_for_service Alien4Cloud "$ALIEN4CLOUD_PID_FILE" "$ALIEN4CLOUD_START_TIMEOUT" \
        alien4cloud_healthy "$ALIEN4CLOUD_LOG"
    say "Alien4Cloud $ALIEN4CLOUD_VERSION is up: $ALIEN4CLOUD_URL (admin/admin; its Elasticsearch: $ALIEN4CLOUD_ES_URL)"
}

stop_a4c() {
    local pid
    if pid="$(alien4cloud_pid)"; then
        stop_pid Alien4Cloud "$pid"
    elif port_in_use "$ALIEN4CLOUD_PORT" && alien4cloud_healthy; then
        say "the Alien4Cloud on port $ALIEN4CLOUD_PORT was not started by these scripts: left running"
    else
        say "Alien4Cloud is not running"
    fi
}

status_a4c() {
    local pid
    if pid="$(alien4cloud_pid)"; then
        if alien4cloud_healthy; then
            print_status a4c running "pid $pid" "$ALIEN4CLOUD_URL (Alien4Cloud $ALIEN4CLOUD_VERSION)"
        else
            print_status a4c starting "pid $pid" "$ALIEN4CLOUD_URL (log $ALIEN4CLOUD_LOG)"
        fi
    elif alien4cloud_healthy; then
        print_status a4c running "not ours" "$ALIEN4CLOUD_URL"
    else
        print_status a4c stopped "" ""
    fi
}

# The settings that point the console at this Alien4Cloud, as .env lines. The restart
# command names this checkout's var dir and ports, so it restarts this Alien4Cloud whatever
# the environment it runs in.
env_a4c() {
    cat <<EOF
A4C_SERVER_URL=$ALIEN4CLOUD_URL
A4C_SERVER_USERNAME=admin
A4C_SERVER_PASSWORD=admin
A4C_ES_URLS=$ALIEN4CLOUD_ES_URL
A4C_ES_CLUSTER_NAME=escluster
A4C_ES_REPOSITORY_PATH=$ALIEN4CLOUD_ES_PATH_REPO/a4c-backup
A4C_DATA_DIR=$ALIEN4CLOUD_DATA_DIR
A4C_MAINTENANCE=required
A4C_RESTART_COMMAND='env A4C_VAR_DIR=$VAR_DIR A4C_ALIEN4CLOUD_PORT=$ALIEN4CLOUD_PORT A4C_ALIEN4CLOUD_ES_PORT=$ALIEN4CLOUD_ES_PORT A4C_ALIEN4CLOUD_ES_TRANSPORT_PORT=$ALIEN4CLOUD_ES_TRANSPORT_PORT bash $SCRIPTS_DIR/services.sh restart a4c'
EOF
}

# --- Command line --------------------------------------------------------------------------

print_status() {
    printf '%-7s %-8s %-10s %s\n' "$1" "$2" "$3" "$4"
}


# ordered_services ACTION SERVICE...: the requested services in start order (stop walks it
# backwards), without repeats.
ordered_services() {
    local action="$1" service
    shift
    local wanted=" $* "
    if [[ "$wanted" == *" all "* ]]; then
        if [[ "$action" == start || "$action" == restart ]]; then
            wanted="$wanted${ALL_SERVICES[*]} "
        else
            wanted="$wanted${SERVICE_ORDER[*]} "
        fi
    fi
    for service in "${SERVICE_ORDER[@]}"; do
        [[ "$wanted" == *" $service "* ]] && printf '%s\n' "$service"
    done
    return 0
}

main() {
    local action="${1:-}" service index
    local -a requested services
    [[ $# -gt 0 ]] && shift
    case "$action" in
    start | restart) requested=("${DEFAULT_START[@]}") ;;
    stop | status) requested=(all) ;;
    env)
        [[ "${1:-}" == a4c && $# -eq 1 ]] || {
            usage >&2
            return 2
        }
        env_a4c
        return 0
        ;;
    -h | --help | help)
        usage
        return 0
        ;;
    *)
        usage >&2
        return 2
        ;;
    esac
    if [[ $# -gt 0 ]]; then
        requested=("$@")
    fi
    for service in "${requested[@]}"; do
        [[ " all ${SERVICE_ORDER[*]} " == *" $service "* ]] || {
            usage >&2
            die "unknown service: $service"
        }
    done
    mapfile -t services < <(ordered_services "$action" "${requested[@]}")

    if [[ "$action" == start || "$action" == restart ]]; then
        remember_stack
    elif ((${#STACK_REMEMBERED[@]} > 0)); then
        local remembered=() name
        for name in "${STACK_REMEMBERED[@]}"; do remembered+=("$name=${!name}"); done
        say "as the stack of $VAR_DIR was started ($STACK_FILE): ${remembered[*]}"
    fi

    if [[ "$action" == stop || "$action" == restart ]]; then
        for ((index = ${#services[@]} - 1; index >= 0; index--)); do
            "stop_${services[index]}"
        done
    fi
    if [[ "$action" == start || "$action" == restart ]]; then
        for service in "${services[@]}"; do
            "start_$service"
        done
    fi
    if [[ "$action" == status ]]; then
        for service in "${services[@]}"; do
            "status_$service"
        done
    fi
}

main "$@"

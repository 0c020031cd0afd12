#!/usr/bin/env bash
# A small real LDAP directory (OpenLDAP's slapd) on a loopback port, for the tests and for
# trying the console's directory sign-in: people and groups of a made-up company, reset at
# every start. Never a directory to keep anything in.
#
#   scripts/ldap.sh start|stop|url|env
#
# Settings: A4C_LDAP_PORT (3890), A4C_VAR_DIR (its files go to var/ldap). Needs the Debian
# packages slapd and ldap-utils (scripts/setup.sh installs them).

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LDAP_PORT="${A4C_LDAP_PORT:-3890}"
LDAP_DIR="$VAR_DIR/ldap"
LDAP_CONF="$LDAP_DIR/slapd.conf"
LDAP_PID_FILE="$LDAP_DIR/slapd.pid"
LDAP_LOG="$LOG_DIR/ldap.log"
LDAP_URL="ldap://127.0.0.1:$LDAP_PORT"
LDAP_SUFFIX="dc=a4c,dc=test"
# The directory's own administrator (the tests change groups as it) and the read-only account
# the console binds as.
LDAP_ROOT_DN="cn=admin,$LDAP_SUFFIX"
LDAP_ROOT_PASSWORD="admin-secret"
LDAP_CONSOLE_DN="cn=console,ou=services,$LDAP_SUFFIX"
LDAP_CONSOLE_PASSWORD="console-secret"

usage() {
    cat <<USAGE
Usage: scripts/ldap.sh start|stop|url|env

start  a fresh test directory on $LDAP_URL (suffix $LDAP_SUFFIX): people alice (viewers),
       oscar (operators), rita (restorers), sam (admins), nora (no group); each person's
       password is pw-<name>; its administrator is $LDAP_ROOT_DN ($LDAP_ROOT_PASSWORD).
       Anything changed in it is lost at the next start.
stop   stop it (only the slapd this script started)
url    print its URL
env    print the console's A4C_LDAP_* settings for it (.env lines, quoted for a shell too)
USAGE
}

ldap_pid() {
    local pid
    pid="$(live_pid "$LDAP_PID_FILE")" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$LDAP_CONF" || return 1
    printf '%s\n' "$pid"
}

ldap_answers() {
    ldapsearch -x -H "$LDAP_URL" -D "$LDAP_CONSOLE_DN" -w "$LDAP_CONSOLE_PASSWORD" \
        -b "$LDAP_SUFFIX" -s base -o nettimeout=2 '(objectClass=*)' 1.1 >/dev/null 2>&1
}

write_config() {
    cat >"$LDAP_CONF" <<CONF
# Written by scripts/ldap.sh at every start: change the script, not this file.
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile $LDAP_PID_FILE
argsfile $LDAP_DIR/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "$LDAP_SUFFIX"
rootdn "$LDAP_ROOT_DN"
rootpw $LDAP_ROOT_PASSWORD
directory $LDAP_DIR/data
access to attrs=userPassword by self write by anonymous auth by * none
access to * by users read by * none
CONF
}

person() {
    local uid="$1" given="$2" number="$3"
    printf 'dn: uid=%s,ou=people,%s\n' "$uid" "$LDAP_SUFFIX"
    printf 'objectClass: inetOrgPerson\nobjectClass: posixAccount\n'
    printf 'uid: %s\ncn: %s Example\ngivenName: %s\nsn: Example\nmail: %s@a4c.test\n' \
        "$uid" "$given" "$given" "$uid"
    printf 'uidNumber: %s\ngidNumber: %s\nhomeDirectory: /home/%s\nuserPassword: pw-%s\n\n' \
        "$number" "$number" "$uid" "$uid"
}

# group NAME GID UID...: a groupOfNames under ou=groups and the same people as a posixGroup
# under ou=posix-groups (for A4C_LDAP_GROUP_TYPE=posixGroup).
group() {
    local name="$1" number="$2" uid
    shift 2
    printf 'dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n' "$name" "$LDAP_SUFFIX" "$name"
    # A groupOfNames needs one member at least: a placeholder, so that the tests can take
    # every person out of a group.
    printf 'member: cn=placeholder,%s\n' "$LDAP_SUFFIX"
    for uid in "$@"; do
        printf 'member: uid=%s,ou=people,%s\n' "$uid" "$LDAP_SUFFIX"
    done
    printf '\ndn: cn=%s,ou=posix-groups,%s\nobjectClass: posixGroup\ncn: %s\ngidNumber: %s\n' \
        "$name" "$LDAP_SUFFIX" "$name" "$number"
    for uid in "$@"; do
        printf 'memberUid: %s\n' "$uid"
    done
    printf '\n'
}

unit() {
    printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$1" "$LDAP_SUFFIX" "$1"
}

write_tree() {
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: a4c\no: A4C test\n\n' \
        "$LDAP_SUFFIX"
    unit people
    unit groups
    unit posix-groups
    unit services
    printf 'dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n' \
        "$LDAP_CONSOLE_DN"
    printf 'cn: console\nuserPassword: %s\n\n' "$LDAP_CONSOLE_PASSWORD"
    person alice Alice 2001
    person oscar Oscar 2002
    person rita Rita 2003
    person sam Sam 2004
    person nora Nora 2005
    group viewers 3001 alice
    group operators 3002 oscar
    group restorers 3003 rita
    group admins 3004 sam
}

start_ldap() {
    [[ -x /usr/sbin/slapd ]] ||
        die "slapd is not installed: apt-get install slapd ldap-utils (scripts/setup.sh does)"
    if ldap_pid >/dev/null; then
        stop_ldap
    fi
    if port_in_use "$LDAP_PORT"; then
        die "port $LDAP_PORT is taken by $(describe_port "$LDAP_PORT"). Free it or set A4C_LDAP_PORT."
    fi
    rm -rf "$LDAP_DIR"
    mkdir -p "$LDAP_DIR/data" "$LOG_DIR"
    write_config
    write_tree >"$LDAP_DIR/tree.ldif"
    run_logged "$LDAP_LOG" "loading the test tree into $LDAP_DIR" \
        /usr/sbin/slapadd -f "$LDAP_CONF" -l "$LDAP_DIR/tree.ldif"
    say "starting slapd on $LDAP_URL"
    /usr/sbin/slapd -f "$LDAP_CONF" -h "$LDAP_URL/" >>"$LDAP_LOG" 2>&1 ||
        die "slapd failed to start." "$LDAP_LOG"
    wait_for_ldap
    say "test directory is up: $LDAP_URL ($LDAP_SUFFIX)"
}

wait_for_ldap() {
    local started="$SECONDS"
    until ldap_answers; do
        if ((SECONDS - started >= 30)); then
            die "slapd did not answer on $LDAP_URL within 30 s." "$LDAP_LOG"
        fi
        sleep 0.2
    done
}

ldap_gone() {
    ! kill -0 "$1" 2>/dev/null
}

stop_ldap() {
    local pid
    if pid="$(ldap_pid)"; then
        say "stopping slapd (pid $pid)"
        kill -TERM "$pid"
        wait_until 30 ldap_gone "$pid" || die "slapd (pid $pid) is still running after 30 s"
    else
        say "the test directory is not running"
    fi
}

env_ldap() {
    cat <<SETTINGS
A4C_LDAP_URL='$LDAP_URL'
A4C_LDAP_BIND_DN='$LDAP_CONSOLE_DN'
A4C_LDAP_BIND_PASSWORD='$LDAP_CONSOLE_PASSWORD'
A4C_LDAP_USER_SEARCH_BASE='ou=people,$LDAP_SUFFIX'
A4C_LDAP_USER_FILTER='(uid=%(user)s)'
A4C_LDAP_GROUP_SEARCH_BASE='ou=groups,$LDAP_SUFFIX'
A4C_LDAP_GROUP_TYPE='groupOfNames'
A4C_LDAP_GROUP_VIEWERS='cn=viewers,ou=groups,$LDAP_SUFFIX'
A4C_LDAP_GROUP_OPERATORS='cn=operators,ou=groups,$LDAP_SUFFIX'
A4C_LDAP_GROUP_RESTORERS='cn=restorers,ou=groups,$LDAP_SUFFIX'
A4C_LDAP_GROUP_SUPERUSERS='cn=admins,ou=groups,$LDAP_SUFFIX'
SETTINGS
}

case "${1:-}" in
start) start_ldap ;;
stop) stop_ldap ;;
url) printf '%s\n' "$LDAP_URL" ;;
env) env_ldap ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Installs the Elasticsearch of A4C_ES_VERSION: checks that a fitting JDK is there, fetches
# the distribution with Maven into the cache (outside the clone), unpacks it, and creates the
# user it runs as. setup.sh runs it, and services.sh before starting a version not yet
# installed. Safe to run again: each step is skipped when its result is already there.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SETUP_LOG="$LOG_DIR/setup.log"
TEMP_DIRS=()
cleanup() {
    if ((${#TEMP_DIRS[@]})); then
        rm -rf "${TEMP_DIRS[@]}"
    fi
}
trap cleanup EXIT

check_java() {
    local java_home
    java_home="$(es_java_home)" ||
        die "Elasticsearch $ES_VERSION needs a JDK $(es_minimum_java) or newer and none was found under /usr/lib/jvm. Install one, or point A4C_ES_JAVA_HOME at it."
    [[ -x "$java_home/bin/java" ]] || die "A4C_ES_JAVA_HOME=$java_home has no bin/java"
}

fetch_elasticsearch() {
    local download unpack artifact="$ES_ARTIFACT"
    mkdir -p "$CACHE_DIR"
    if [[ ! -s "$ES_ZIP" ]]; then
        # Downloaded into a temporary directory, so an interrupted fetch leaves no half zip.
        download="$(mktemp -d "$CACHE_DIR/.download.XXXXXX")"
        TEMP_DIRS+=("$download")
        say "downloading Elasticsearch $ES_VERSION with Maven into $CACHE_DIR"
        # Run from the temporary directory so a pom.xml in the caller's directory is not used.
        if ! (cd "$download" && mvn -B -q dependency:copy -Dartifact="$artifact" \
            -DoutputDirectory="$download") >>"$SETUP_LOG" 2>&1; then
            die "Maven could not download $artifact. Check that A4C_ES_VERSION=$ES_VERSION is a published version and that Maven reaches its repository. Full log: $SETUP_LOG" "$SETUP_LOG"
        fi
        run_logged "$SETUP_LOG" "checking the downloaded archive" \
            unzip -tq "$download/elasticsearch-$ES_VERSION.zip"
        mv "$download/elasticsearch-$ES_VERSION.zip" "$ES_ZIP"
    fi

    if [[ ! -x "$ES_HOME/bin/elasticsearch" ]]; then
        rm -rf "$ES_HOME"
        unpack="$(mktemp -d "$CACHE_DIR/.unpack.XXXXXX")"
        TEMP_DIRS+=("$unpack")
        # The ES user must be able to read the distribution whatever root's umask is.
        # shellcheck disable=SC2016  # expanded by the inner bash
        run_logged "$SETUP_LOG" "unpacking $ES_ZIP" \
            bash -c 'umask 022 && unzip -q "$1" -d "$2"' _ "$ES_ZIP" "$unpack"
        [[ -x "$unpack/elasticsearch-$ES_VERSION/bin/elasticsearch" ]] ||
            die "$ES_ZIP does not contain elasticsearch-$ES_VERSION/bin/elasticsearch; delete it and run setup again"
        chmod 0755 "$unpack/elasticsearch-$ES_VERSION"
        mv "$unpack/elasticsearch-$ES_VERSION" "$ES_HOME"
    fi
}

create_es_user() {
    [[ $EUID -eq 0 ]] || return 0
    if ! id "$ES_USER" >/dev/null 2>&1; then
        run_logged "$SETUP_LOG" "creating the system user $ES_USER (Elasticsearch refuses to run as root)" \
            useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$ES_USER"
    fi
}

# The cache usually sits in root's home, which other users cannot enter. Give the ES user
# the right to pass through (not to list) each directory on the way, and nothing more.
give_es_user_access_to_distribution() {
    [[ $EUID -eq 0 ]] || return 0
    local launcher="$ES_HOME/bin/elasticsearch" path="" part
    local -a parts
    if as_es_user test -x "$launcher"; then
        return
    fi
    IFS='/' read -r -a parts <<<"${ES_HOME#/}"
    for part in "${parts[@]}"; do
        path="$path/$part"
        if ! as_es_user test -x "$path"; then
            setfacl -m "u:$ES_USER:x" "$path" ||
                die "$ES_USER cannot enter $path and an ACL could not be added. Set A4C_CACHE_DIR to a directory other users can read (for example /var/cache/a4c-backup) and run setup again."
            say "gave $ES_USER pass-through access to $path (ACL u:$ES_USER:x) to reach $ES_HOME"
        fi
    done
    as_es_user test -x "$launcher" ||
        die "$ES_USER still cannot run $launcher; check the permissions along that path"
}

main() {
    case "$ES_MAJOR" in
    6 | 7 | 8 | 9) ;;
    *) die "A4C_ES_VERSION=$ES_VERSION: a4c-backup supports Elasticsearch 6.8, 7.17, 8.19 and 9.x" ;;
    esac
    mkdir -p "$LOG_DIR"
    check_java
    fetch_elasticsearch
    create_es_user
    give_es_user_access_to_distribution
}

main "$@"

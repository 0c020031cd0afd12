#!/usr/bin/env bash
# Installs everything a4c-backup needs on a Debian machine: system packages, the Python
# virtualenv, an Elasticsearch distribution and the user it runs as. Safe to run again:
# each step is skipped when its result is already there.
#
# Settings (see lib.sh): A4C_ES_VERSION, A4C_CACHE_DIR, A4C_VAR_DIR, A4C_ES_JAVA_HOME.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SETUP_LOG="$LOG_DIR/setup.log"
# Redis for Celery; chromium and fonts for the browser tests (Playwright drives
# /usr/bin/chromium, it downloads no browser); maven and a JDK to fetch and run Elasticsearch.
APT_PACKAGES=(
    redis-server
    chromium fonts-liberation fonts-dejavu-core
    curl unzip acl
    maven openjdk-17-jdk-headless
)
MINIMUM_PYTHON="3.11"

TEMP_DIRS=()
cleanup() {
    if ((${#TEMP_DIRS[@]})); then
        rm -rf "${TEMP_DIRS[@]}"
    fi
}
trap cleanup EXIT

install_system_packages() {
    local missing=() package
    if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        APT_PACKAGES+=(python3 python3-venv)
    fi
    for package in "${APT_PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null)" != ii* ]]; then
            missing+=("$package")
        fi
    done
    if ((${#missing[@]} == 0)); then
        return
    fi
    command -v apt-get >/dev/null ||
        die "these packages are missing and apt-get is not available: ${missing[*]}"
    run_logged "$SETUP_LOG" "apt-get update" as_root apt-get update
    run_logged "$SETUP_LOG" "installing ${missing[*]}" \
        as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

install_python_environment() {
    local python="${A4C_PYTHON:-python3}" stamp="$VENV/.a4c-setup-stamp" wanted
    "$python" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$MINIMUM_PYTHON'.split('.'))))" ||
        die "$python is $("$python" -V 2>&1); a4c-backup needs Python $MINIMUM_PYTHON or newer (set A4C_PYTHON to another interpreter)"

    if ! "$VENV/bin/python" -c '' 2>/dev/null; then
        rm -rf "$VENV"
        run_logged "$SETUP_LOG" "creating the virtualenv $VENV" "$python" -m venv "$VENV"
    fi

    # Reinstall only when the dependencies or the interpreter changed.
    wanted="$(sha256sum "$PROJECT_DIR/pyproject.toml" | cut -d' ' -f1) $("$VENV/bin/python" -V 2>&1)"
    if [[ "$(cat "$stamp" 2>/dev/null)" == "$wanted" ]] &&
        "$VENV/bin/python" -c "import importlib.metadata as m; m.version('a4c-backup')" 2>/dev/null; then
        return
    fi
    run_logged "$SETUP_LOG" "installing Python packages into .venv (pip install -e '.[test]')" \
        "$VENV/bin/python" -m pip install --disable-pip-version-check -e "${PROJECT_DIR}[test]"
    printf '%s\n' "$wanted" >"$stamp"
}

check_java() {
    local java_home
    java_home="$(es_java_home)" ||
        die "Elasticsearch $ES_VERSION needs a JDK $(es_minimum_java) or newer and none was found under /usr/lib/jvm. Install one, or point A4C_ES_JAVA_HOME at it."
    [[ -x "$java_home/bin/java" ]] || die "A4C_ES_JAVA_HOME=$java_home has no bin/java"
}

fetch_elasticsearch() {
    local download unpack
    local artifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"
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
    mkdir -p "$LOG_DIR"
    install_system_packages
    install_python_environment
    check_java
    fetch_elasticsearch
    create_es_user
    give_es_user_access_to_distribution
    prepare_es_dirs
    say "setup done: .venv ready, Elasticsearch $ES_VERSION in $ES_HOME"
}

main "$@"

#!/usr/bin/env bash
# Installs everything a4c-backup needs on a Debian machine: system packages, the Python
# virtualenv, an Elasticsearch distribution and the user it runs as. Safe to run again:
# each step is skipped when its result is already there.
#
# Settings (see lib.sh): A4C_ES_VERSION (6.8.23, 7.17.29, 8.19.8 or 9.2.0), A4C_CACHE_DIR,
# A4C_VAR_DIR, A4C_ES_JAVA_HOME.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SETUP_LOG="$LOG_DIR/setup.log"
# Redis for Celery; chromium and fonts for the browser tests (Playwright drives
# /usr/bin/chromium, it downloads no browser); maven and a JDK to fetch and run Elasticsearch;
# OpenLDAP's and SASL's headers and a compiler to build python-ldap (django-auth-ldap); slapd
# and ldap-utils for the test directory of scripts/ldap.sh.
APT_PACKAGES=(
    redis-server
    chromium fonts-liberation fonts-dejavu-core
    curl unzip acl
    maven openjdk-17-jdk-headless
    gcc python3-dev libldap2-dev libsasl2-dev
    slapd ldap-utils
)
# axe-core, the accessibility checker the browser tests inject into Chromium, comes from the
# npm registry as tests/a11y/package-lock.json pins it; node and npm fetch it.
A11Y_DIR="$PROJECT_DIR/tests/a11y"
MINIMUM_PYTHON="3.11"

install_system_packages() {
    local missing=() package
    if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        APT_PACKAGES+=(python3 python3-venv)
    fi
    if ! command -v npm >/dev/null; then
        APT_PACKAGES+=(nodejs npm)
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

# Into tests/a11y/node_modules (ignored by git), again only when the lock file changed.
install_accessibility_checker() {
    local stamp="$A11Y_DIR/node_modules/.a4c-setup-stamp" wanted
    wanted="$(sha256sum "$A11Y_DIR/package-lock.json" | cut -d' ' -f1)"
    if [[ "$(cat "$stamp" 2>/dev/null)" == "$wanted" && -f "$A11Y_DIR/node_modules/axe-core/axe.min.js" ]]; then
        return
    fi
    run_logged "$SETUP_LOG" "installing axe-core into tests/a11y/node_modules (npm ci)" \
        npm ci --prefix "$A11Y_DIR" --no-audit --no-fund
    printf '%s\n' "$wanted" >"$stamp"
}

main() {
    mkdir -p "$LOG_DIR"
    install_system_packages
    install_python_environment
    install_accessibility_checker
    bash "$SCRIPTS_DIR/install-es.sh"
    prepare_es_dirs
    say "setup done: .venv ready, Elasticsearch $ES_VERSION in $ES_HOME"
}

main "$@"

#!/usr/bin/env bash
# What the benchmarks need beyond scripts/setup.sh: restic, borg (borgbackup) and rsync (the
# peers the figures are compared with) and strace (syscalls per file) from the distribution's
# packages, and the bench extra (matplotlib, pyinstrument) in .venv. Safe to run again: installed parts are skipped.

# shellcheck source-path=SCRIPTDIR source=../scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

SETUP_LOG="$LOG_DIR/bench-setup.log"
BENCH_PACKAGES=(restic borgbackup rsync strace time)

mkdir -p "$LOG_DIR"
[[ -x "$VENV/bin/python" ]] || die "no .venv: run scripts/setup.sh first"

missing=()
for package in "${BENCH_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null)" != ii* ]]; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null ||
        die "install ${missing[*]} with your package manager: apt-get is not available"
    run_logged "$SETUP_LOG" "apt-get update" as_root apt-get update
    run_logged "$SETUP_LOG" "installing ${missing[*]}" \
        as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! "$VENV/bin/python" -c 'import matplotlib, pyinstrument' 2>/dev/null; then
    run_logged "$SETUP_LOG" "installing the bench extra into .venv (pip install -e '.[test,bench]')" \
        "$VENV/bin/python" -m pip install --disable-pip-version-check -e "${PROJECT_DIR}[test,bench]"
fi
say "bench setup done: $(restic version | cut -d' ' -f1-2), $(borg --version), \
$(rsync --version | head -1 | cut -d' ' -f1-4), $(strace -V | head -1)"

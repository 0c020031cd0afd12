#!/bin/bash
# The commands at 1,000,000 files, one run each, for their peak memory and per-file time (issue 28,
# item 5): bench/run.py's growth table keeps a reference copy and the inner loop's store beside
# ours, which at 1M files does not fit a 24 GiB machine's tmpfs. Needs Elasticsearch up (the demo
# generator makes its indices):  bash scripts/services.sh start es
#   bash bench/memory_1m.sh /mnt/bench1m > bench/results/growth-1M/output.txt
set -u
W=${1:?"usage: bench/memory_1m.sh DIR (a tmpfs with room for 10 GiB and 3 million inodes)"}
export A4C_VAR_DIR=$W/var DATABASE_URL=sqlite:///$W/db.sqlite3 A4C_DATA_DIR=$W/data A4C_BACKUP_DIR=$W/store A4C_MAINTENANCE=off A4C_LEGACY_CONFIG=$W/nolegacy.yml A4C_FILE_WORKERS=2
cd "$(dirname "$0")/.."
echo "generate: $(date -u +%T)"
.venv/bin/python - <<'PY' || exit 1
import os, sys, time
sys.path.insert(0, os.getcwd()); os.environ.setdefault("DJANGO_SETTINGS_MODULE", "a4c_backup.settings")
import django; django.setup()
from backups.demo import generator as demo
print(demo.generate(os.environ["A4C_DATA_DIR"], size=4000 * 2**20, files=1_000_000, prefix=f"m1m{int(time.time()) % 10000}-"))
PY
.venv/bin/python manage.py migrate -v0 || exit 1
t() { label=$1; shift; /usr/bin/time -f "$label %e s wall, %U user + %S sys CPU s, %M KB peak" "$@" > /dev/null 2> $W/err || { cat $W/err; exit 1; }; tail -1 $W/err; }
t "find -printf" find $W/data -printf '%p %s %T@ %m\n'
t "full backup" .venv/bin/python manage.py backup --files-only --name full
t "unchanged backup" .venv/bin/python manage.py backup --files-only --name again
t "restore over unchanged" .venv/bin/python manage.py restore full --scope files --yes --no-safety-backup
.venv/bin/python -c "
import os, sys; sys.path.insert(0, os.getcwd())
from pathlib import Path
from bench.commands import change_one_percent
change_one_percent(Path('$W/data'), 1)"
t "restore, 1 pct changed" .venv/bin/python manage.py restore full --scope files --yes --no-safety-backup
echo "done: $(date -u +%T)"

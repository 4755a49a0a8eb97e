#!/usr/bin/env bash
# Side by side on one scale-70 pgbench database (>= 1 GB) and one MinIO:
# homeostat backup push / restore / wal-push / wal-fetch against Barman Cloud
# (barman-cloud-backup, -restore, -wal-archive, -wal-restore) and against
# pg_basebackup -Ft to local disk. Prints the tables BENCHMARKS.md quotes.
#
# Barman comes from Debian (PyPI is not reachable here or in CI): the .debs
# are unpacked into ~/.cache/homeostat/barman-VERSION by hack/barman-peer.sh,
# nothing is installed on the system. Without Python or apt the Barman rows
# are skipped with a message and the homeostat rows still run.
#
# The two benchmarks run one after the other, each under the shared heavy-test
# lock (each takes a few minutes on 2 cores); BENCH selects one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
lock=${HOMEOSTAT_HEAVY_LOCK:-/tmp/homeostat-heavy.lock}

if dir=$(bash hack/barman-peer.sh); then
	export HOMEOSTAT_BARMAN_DIR=$dir
	echo "bench-backup: Barman Cloud from $dir" >&2
else
	echo "bench-backup: Barman Cloud unavailable (see above): its rows are skipped" >&2
	export HOMEOSTAT_BARMAN_DIR=/nonexistent
fi

for b in ${BENCH:-SideBySideBackup SideBySideWAL}; do
	echo "== $b ($(date -u +%FT%TZ), load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)" >&2
	flock "$lock" go test -count=1 -run '^$' -bench "^Benchmark$b\$" -benchtime 1x -timeout 60m -v ./backup/ |
		grep -v '^goos\|^goarch\|^pkg\|^cpu'
done

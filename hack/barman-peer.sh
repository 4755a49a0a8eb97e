#!/usr/bin/env bash
# Fetches Barman Cloud (barman-cli-cloud from Debian, with the Python modules it
# needs that the system lacks) into ~/.cache/homeostat/barman-VERSION without
# installing anything on the system: `apt-get download` + `dpkg -x`.
# Prints the directory on success; exits non-zero with a message otherwise.
# PyPI is not reachable from CI, Debian's archive is.
set -euo pipefail

cache=${HOMEOSTAT_CACHE:-$HOME/.cache/homeostat}
python=${PYTHON:-/usr/bin/python3}
command -v "$python" >/dev/null || { echo "barman-peer: no $python" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "barman-peer: no apt-get to fetch barman-cli-cloud" >&2; exit 1; }
version=$(apt-cache policy barman-cli-cloud 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
	echo "barman-peer: apt knows no barman-cli-cloud (run apt-get update?)" >&2
	exit 1
fi
dir="$cache/barman-$version"
if [ -x "$dir/usr/bin/barman-cloud-backup" ] && [ -f "$dir/.complete" ]; then
	echo "$dir"
	exit 0
fi
rm -rf "$dir" && mkdir -p "$dir/debs"
# The packages barman-cli-cloud pulls in; python3-snappy lets it compress with snappy.
pkgs=(barman-cli-cloud python3-barman python3-boto3 python3-botocore python3-s3transfer python3-jmespath
	python3-dateutil python3-psycopg2 python3-urllib3 python3-requests python3-certifi python3-chardet
	python3-charset-normalizer python3-idna python3-snappy libsnappy1v5 libpq5)
(cd "$dir/debs" && apt-get download "${pkgs[@]}" >&2) || { echo "barman-peer: apt-get download failed" >&2; exit 1; }
for d in "$dir"/debs/*.deb; do dpkg -x "$d" "$dir"; done
# The entry points call /usr/bin/python3; the modules are found by PYTHONPATH.
PYTHONPATH="$dir/usr/lib/python3/dist-packages" LD_LIBRARY_PATH="$dir/usr/lib/x86_64-linux-gnu" \
	"$python" -c 'import barman, boto3, psycopg2' >&2 || { echo "barman-peer: the unpacked modules do not import" >&2; exit 1; }
touch "$dir/.complete"
echo "$dir"

#!/bin/sh
# install-deps.sh - install every Debian package the build, the tests and the
# demo need. Idempotent and quiet when everything is present. Needs root (or
# sudo) only when something is missing.
set -eu

PKGS="build-essential pkg-config
libpq-dev libcurl4-openssl-dev libjansson-dev libhiredis-dev libyaml-dev
libssl-dev libcmocka-dev libxml2-dev libmicrohttpd-dev
postgresql redis-server curl ca-certificates procps
nodejs"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# npm: Debian's package, unless the nodejs installed already brings it (NodeSource's does)
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

echo "install-deps: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "install-deps: missing packages:$missing; run this script as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done" >&2

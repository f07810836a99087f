#!/bin/sh
# bench.d/manifest.sh [BUILD_DIR] - manifest decoding speed rows.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
exec "$build/tools/bench_manifest"

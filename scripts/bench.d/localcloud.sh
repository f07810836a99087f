#!/bin/bash
# bench.d/localcloud.sh [BUILD_DIR] - the local provider with 10,000 instances as
# `| name | value | unit |` rows: the aws driver's describe (calls, ms) and
# DescribeInstances by tag in pages of 1000 (calls, ms). See tests/tools/bench_localcloud.c.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD:-build}}
case "$build" in /*) ;; *) build=$top/$build ;; esac
bin=$build/tools/bench_localcloud
if [ ! -x "$bin" ]; then
	echo "bench localcloud: $bin not built (run make)" >&2
	exit 1
fi
SPINUP_BIN_DIR=${SPINUP_BIN_DIR:-$top/bin} "$bin"

#!/bin/bash
# bench.d/aws.sh [BUILD_DIR] - AWS driver figures as `| name | value | unit |` rows:
# SigV4 signs and verifies per second, parsing 1000-instance Auto Scaling and EC2 pages.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${BUILD:-build}}
case "$build" in /*) ;; *) build=$top/$build ;; esac
bin=$build/tools/bench_aws
if [ ! -x "$bin" ]; then
	echo "bench aws: $bin not built (run make)" >&2
	exit 1
fi
"$bin"

#!/bin/sh
# bench.d/planner.sh [BUILD_DIR] - planner rows: plan_compute over 1,000 and
# 10,000 workspaces (steady and cold pass, peak heap, allocations per pass).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
exec "$build/tools/bench_plan"

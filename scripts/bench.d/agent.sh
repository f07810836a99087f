#!/bin/sh
# Benchmark rows for the agent and its HTTP driver: observe N real agents
# concurrently (BENCH_AGENTS, default 50). Prints "| name | value | unit |".
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
SPINUP_BIN_DIR=${SPINUP_BIN_DIR:-$top/bin} exec "$build/tools/bench_agent"

#!/bin/bash
# bench.d/store.sh - store benchmarks (drivers/pgstore.c): apply and list
# 1000 workspaces on the throwaway Postgres. Needs DATABASE_URL; run by
# scripts/bench.sh with BUILD set to the build directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
"$top/${BUILD:-build}/tools/bench_pgstore" "${STORE_BENCH_N:-1000}"

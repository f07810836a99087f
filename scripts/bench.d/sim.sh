#!/bin/bash
# bench.d/sim.sh [BUILD_DIR] - simulation rows: whole seeded runs (observe,
# plan, act, record over the sim drivers; 60 faulty passes, then convergence)
# per second, and the most passes a run needed to converge after faults.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
seeds=${BENCH_SIM_SEEDS:-5000}
start=$(date +%s.%N)
out=$(SPINUP_SIM_SEEDS=$seeds "$build/tests/test_simulation" 2>/dev/null | grep '^simulation:')
end=$(date +%s.%N)
conv=$(printf '%s\n' "$out" | sed -n 's/.*max passes to converge \([0-9]*\).*/\1/p')
failed=$(printf '%s\n' "$out" | sed -n 's/.*failed \([0-9]*\)$/\1/p')
[ "${failed:-1}" = 0 ] || { echo "simulation failed: $out" >&2; exit 1; }
awk -v n="$seeds" -v s="$start" -v e="$end" \
	'BEGIN { printf "| simulation: seeded runs (%d seeds, 1 core) | %.0f | runs/s |\n", n, n / (e - s) }'
echo "| simulation: most passes to converge after faults stop | $conv | passes |"

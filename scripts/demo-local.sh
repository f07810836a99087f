#!/bin/bash
# demo-local.sh up|down - the demo on the local stack (scripts/localstack.sh):
# the real AWS driver against spinup-localcloud, real agents on loopback
# addresses, real Postgres and Redis. Run by scripts/demo.sh (make demo).
#
# up: starts the stack, applies manifests/examples/, shows
# `spinctl get workspaces` at every phase change until the Running ones are
# READY, curls their URLs, shows a file surviving a stop and the loss of its VM, stops
# bob-api, deletes carol-notes, and returns with the stack running.
# Non-interactive. On a timeout (DEMO_TIMEOUT seconds per step, default 120)
# it prints `spinctl why` for each workspace that is not READY and the tails
# of the logs, and exits 1 (the stack stays up for a look; `make demo-down`).
# down: stops everything up started.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
export LOCALSTACK_DIR=${LOCALSTACK_DIR:-$top/.demo}
TIMEOUT=${DEMO_TIMEOUT:-120}
WORKSPACES="alice-blog bob-api carol-notes"

step() { printf '\n==> %s\n' "$*"; }
give_up() {
	echo "demo: $*" >&2
	e2e_diagnose $WORKSPACES >&2 || true
	echo "demo: the stack is still running; stop it with: make demo-down" >&2
	exit 1
}

# show_until TIMEOUT PHASE NAME...: print `spinctl get workspaces` whenever a
# phase changes, until every NAME is in PHASE.
show_until() {
	local timeout=$1 want=$2 deadline sig last="" n all
	shift 2
	deadline=$(( $(date +%s) + timeout ))
	while :; do
		sig="" all=1
		for n in "$@"; do
			p=$(e2e_phase "$n") || p="?"
			sig="$sig $n=$p"
			[ "$p" = "$want" ] || all=0
		done
		sig="$sig $(e2e_sql "SELECT string_agg(s.phase::text, ',' ORDER BY w.name) FROM workspaces w
			LEFT JOIN workspace_status s ON s.workspace_id = w.id")"
		if [ "$sig" != "$last" ]; then
			echo "-- $(date +%T)"
			"$spinctl" get workspaces || true
			last=$sig
		fi
		[ $all -eq 1 ] && return 0
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

up() {
	step "starting the local stack (Postgres, Redis, spinup-localcloud, spinupd) in $LOCALSTACK_DIR"
	eval "$("$top/scripts/localstack.sh" up)"
	# shellcheck source=e2elib.sh
	. "$top/scripts/e2elib.sh"
	spinctl=$LOCALSTACK_DIR/bin/spinctl
	"$top/scripts/localstack.sh" status

	step "spinctl apply -f manifests/examples/"
	man=$LOCALSTACK_DIR/manifests
	rm -rf "$man" && mkdir -p "$man" && cp "$top"/manifests/examples/*.yaml "$man/"
	"$spinctl" apply -f "$man"

	step "waiting for alice-blog and bob-api to be READY (carol-notes is declared Stopped)"
	show_until "$TIMEOUT" READY alice-blog bob-api || give_up "workspaces not READY after ${TIMEOUT}s"
	e2e_wait "$TIMEOUT" STOPPED carol-notes || give_up "carol-notes not STOPPED after ${TIMEOUT}s"

	step "spinctl events alice-blog (every phase change, from PENDING)"
	"$spinctl" events alice-blog || true

	step "each URL answers"
	for n in alice-blog bob-api; do
		u=$(e2e_url "$n")
		code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "$u/") || give_up "$n: $u does not answer"
		echo "  $n  $u  -> HTTP $code"
	done

	step "a file survives a stop, the loss of its VM, and a start elsewhere"
	e2e_put alice-blog hello.txt "hello from the demo, $(date -u +%FT%TZ)" || give_up "could not write into alice-blog"
	echo "  wrote hello.txt: $(e2e_get alice-blog hello.txt)"
	inst=$(e2e_status alice-blog instance_id)
	echo "  alice-blog: state: Stopped"
	e2e_apply_state "$man" alice-blog Stopped
	E2E_VERBOSE=1 e2e_wait "$TIMEOUT" STOPPED alice-blog || give_up "alice-blog did not stop"
	e2e_bucket_has alice-blog hello.txt || give_up "stopping alice-blog did not sync hello.txt to the bucket"
	echo "  synced on stop: $(find "$LOCALSTACK_DIR/bucket" -name hello.txt | head -1)"
	echo "  the provider terminates $inst, alice-blog's VM (its disk is gone)"
	curl -fsS -m 5 -X POST "$LOCALCLOUD_ADMIN_URL/instances/$inst/terminate" >/dev/null ||
		give_up "provider admin: terminate $inst"
	echo "  alice-blog: state: Running"
	e2e_apply_state "$man" alice-blog Running
	E2E_VERBOSE=1 e2e_wait "$TIMEOUT" READY alice-blog || give_up "alice-blog did not start again"
	e2e_until "$TIMEOUT" e2e_ready_elsewhere alice-blog "$inst" || give_up "alice-blog did not start off $inst"
	got=$(e2e_get alice-blog hello.txt) || give_up "hello.txt is gone from alice-blog"
	echo "  READY on $(e2e_status alice-blog instance_id), restored from the bucket: $got"
	e2e_wait "$TIMEOUT" READY bob-api || give_up "bob-api not READY"

	step "stop bob-api (state: Stopped)"
	e2e_apply_state "$man" bob-api Stopped
	E2E_VERBOSE=1 e2e_wait "$TIMEOUT" STOPPED bob-api || give_up "bob-api did not stop"

	step "spinctl delete workspace carol-notes"
	"$spinctl" delete workspace carol-notes
	E2E_VERBOSE=1 e2e_wait "$TIMEOUT" GONE carol-notes || give_up "carol-notes was not deleted"

	step "where things are"
	"$spinctl" get workspaces
	echo
	echo "  alice-blog: $(e2e_url alice-blog)/"
	echo "  logs:       $LOCALSTACK_DIR/logs/"
	echo "  try:        eval \"\$(scripts/localstack.sh env)\"; spinctl get workspaces; spinctl drift"
	echo "  stop it:    make demo-down"
}

case "${1:-up}" in
up) up ;;
down) "$top/scripts/localstack.sh" down ;;
*) echo "usage: scripts/demo-local.sh up|down" >&2; exit 2 ;;
esac

# e2elib.sh - shell helpers for driving a running local stack (sourced by
# scripts/demo.sh, tests/test_e2e.sh, scripts/bench.d/e2e.sh).
#
# Needs the exports of `scripts/localstack.sh env` (DATABASE_URL,
# LOCALSTACK_DIR, SPINUP_AGENT_SECRET_FILE, LOCALCLOUD_ADMIN_URL). Reads
# status straight from Postgres (the DB contract of DESIGN.md), so waits do
# not depend on the table layout of `spinctl get`. Writes desired state the
# way the web UI does: an UPDATE of spec columns (the trigger bumps the
# generation and wakes the loop) or `spinctl apply`.
#
# Every wait takes a timeout in seconds and returns 1 when it expires.

e2e_sql() { psql -qAtX -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1"; }

# e2e_q NAME: NAME as an SQL literal (names are DNS labels: no quotes inside).
e2e_q() { printf "'%s'" "${1//\'/}"; }

# e2e_phase NAME: the workspace's phase, "-" without status, "GONE" without row.
e2e_phase() {
	local r
	r=$(e2e_sql "SELECT coalesce(s.phase::text, '-') FROM workspaces w
		LEFT JOIN workspace_status s ON s.workspace_id = w.id WHERE w.name = $(e2e_q "$1")") || return 1
	echo "${r:-GONE}"
}

# e2e_status NAME FIELD: one column of workspace_status (url, instance_id, address, ...).
e2e_status() {
	e2e_sql "SELECT s.$2 FROM workspaces w JOIN workspace_status s ON s.workspace_id = w.id
		WHERE w.name = $(e2e_q "$1")"
}

e2e_id() { e2e_sql "SELECT id FROM workspaces WHERE name = $(e2e_q "$1")"; }

# e2e_wait TIMEOUT PHASE NAME...: until every NAME is in PHASE (GONE: row
# deleted). With E2E_VERBOSE set, prints each phase change as it is seen.
e2e_wait() {
	local timeout=$1 want=$2 deadline n p all
	shift 2
	declare -A last=()
	deadline=$(( $(date +%s) + timeout ))
	while :; do
		all=1
		for n in "$@"; do
			p=$(e2e_phase "$n") || p="?"
			if [ -n "${E2E_VERBOSE:-}" ] && [ "${last[$n]:-}" != "$p" ]; then
				printf '  %-14s %s\n' "$n" "$p"
			fi
			last[$n]=$p
			[ "$p" = "$want" ] || all=0
		done
		[ $all -eq 1 ] && return 0
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# e2e_ready_elsewhere NAME INSTANCE: READY with a URL, on another instance.
e2e_ready_elsewhere() {
	local r
	r=$(e2e_sql "SELECT s.phase = 'READY' AND s.url <> '' AND s.instance_id NOT IN ('', $(e2e_q "$2"))
		FROM workspaces w JOIN workspace_status s ON s.workspace_id = w.id
		WHERE w.name = $(e2e_q "$1")") || return 1
	[ "$r" = t ]
}

# e2e_set_state NAME Running|Stopped: the web UI's write.
e2e_set_state() {
	e2e_sql "UPDATE workspaces SET state = '$2' WHERE name = $(e2e_q "$1")" >/dev/null
}

# e2e_apply_state DIR NAME Running|Stopped: edit NAME's state in the
# manifests copied to DIR and `spinctl apply` them (the declarative path).
e2e_apply_state() {
	local f
	for f in "$1"/*.yaml; do
		grep -q "^  name: $2\$" "$f" || continue
		awk -v n="$2" -v s="$3" '/^  name: / { a = ($2 == n) }
			a && /^  state: / { sub(/state: .*/, "state: " s); a = 0 } { print }' "$f" >"$f.new" &&
			mv "$f.new" "$f"
	done
	"$LOCALSTACK_DIR/bin/spinctl" apply -f "$1"
}

# e2e_url NAME: the workspace's URL without a trailing slash.
e2e_url() { local u; u=$(e2e_status "$1" url) && echo "${u%/}"; }

# e2e_put NAME FILE TEXT / e2e_get NAME FILE: files through the workspace
# (the agent's built-in stand-in serves /files/NAME).
e2e_put() { curl -fsS -m 5 -X PUT --data-binary "$3" "$(e2e_url "$1")/files/$2" >/dev/null; }
e2e_get() { curl -fsS -m 5 "$(e2e_url "$1")/files/$2"; }

# e2e_agent_pid NAME: pid of the agent on the workspace's instance.
e2e_agent_pid() {
	local addr
	addr=$(e2e_status "$1" address) || return 1
	addr=${addr%:*}
	[ -n "$addr" ] || return 1
	pgrep -f "^$LOCALSTACK_DIR/bin/spinup-agent --listen $addr:" | head -1
}

# e2e_bucket_has NAME FILE: the file reached the bucket folder (synced).
e2e_bucket_has() {
	local b p
	b=$(e2e_sql "SELECT bucket || '/' || prefix FROM workspaces WHERE name = $(e2e_q "$1")")
	[ -n "$b" ] || return 1
	p=$LOCALSTACK_DIR/bucket/$b
	[ -f "${p%/}/$2" ]
}

# e2e_until TIMEOUT CMD...: run CMD every 0.2 s until it succeeds.
e2e_until() {
	local deadline=$(( $(date +%s) + $1 ))
	shift
	until "$@"; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}

# e2e_diagnose NAME...: why each workspace that is not READY, and the logs' tails.
e2e_diagnose() {
	local n f
	for n in "$@"; do
		[ "$(e2e_phase "$n" 2>/dev/null)" = READY ] && continue
		echo "---- spinctl why $n"
		"$LOCALSTACK_DIR/bin/spinctl" why "$n" 2>&1 | sed 's/^/    /'
	done
	for f in "$LOCALSTACK_DIR"/logs/spinupd.log "$LOCALSTACK_DIR"/logs/localcloud.log; do
		[ -f "$f" ] || continue
		echo "---- last lines of $f"
		tail -n 25 "$f" | sed 's/^/    /'
	done
	for f in "$LOCALSTACK_DIR"/logs/instances/*.log; do
		[ -f "$f" ] || continue
		echo "---- last lines of $f"
		tail -n 8 "$f" | sed 's/^/    /'
	done
}

#!/bin/bash
# bench.d/calls.sh - cloud API calls and time per reconcile pass at 1,000 and
# 10,000 instances: spinupd --once with its real AWS driver against
# spinup-localcloud holding one group of N InService instances (no processes:
# the API alone). The pool's min = max = N keeps capacity where it is and no
# workspace is declared, so the passes measured are observation: the agents
# of the N instances are polled too (nothing listens: each is "unknown",
# refused at once on loopback; a profile of the 10,000 case shows most CPU
# in libcurl). Calls come from the provider's
# own counter; the pass time from spinupd's pass line.
# Needs DATABASE_URL, REDIS_URL (scripts/bench.sh provides them).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${SPINUP_BIN_DIR:-$top/bin}
work=$(mktemp -d /tmp/spinup-calls.XXXXXX)
dbname=spinup_calls_$$
DB=${DATABASE_URL%/*}/$dbname
lcpid=

cleanup() {
	[ -n "$lcpid" ] && kill -TERM "$lcpid" 2>/dev/null && wait "$lcpid" 2>/dev/null
	psql -XAtq "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
sql() { psql -XAtq "$DB" -c "$1"; }

umask 077
key=AKIDBENCH$$
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$key" "$secret" \
	>"$work/credentials"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/agent.secret"

calls() { curl -s "http://127.0.0.1:$port/_admin/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"])'; }

psql -XAtq "$DATABASE_URL" -c "CREATE DATABASE $dbname" >/dev/null
"$bin/spinctl" --db "$DB" migrate >/dev/null

for n in 1000 10000; do
	[ -n "$lcpid" ] && { kill -TERM "$lcpid"; wait "$lcpid" 2>/dev/null || true; }
	rm -f "$work/port"
	"$bin/spinup-localcloud" --listen 127.0.0.1:0 --port-file "$work/port" \
		--credentials "$work/credentials" --net 201 --boot-delay-ms 0 \
		--group "bench-$n:$n:$n:$n" --instance-cmd none --seed 7 >"$work/lc.log" 2>&1 &
	lcpid=$!
	for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
	port=$(cat "$work/port")
	for _ in $(seq 1 100); do
		[ "$(curl -s "http://127.0.0.1:$port/_admin/state" | grep -o '"InService"' | wc -l)" -ge "$n" ] && break
		sleep 0.2
	done
	sql "DELETE FROM pools" >/dev/null
	sql "INSERT INTO pools (name, asg_name, region, slots_per_instance, min_instances, max_instances)
	     VALUES ('bench', 'bench-$n', 'us-east-1', 4, $n, $n)" >/dev/null
	cat >"$work/d.conf" <<EOC
database_url = $DB
redis_url = $REDIS_URL
cloud = aws
agent = http
aws_region = us-east-1
agent_secret_file = $work/agent.secret
lease_key = spinup:bench-calls:$$
EOC
	for pass in first second steady; do
		before=$(calls)
		AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=$key \
			AWS_SECRET_ACCESS_KEY=$secret AWS_REGION=us-east-1 \
			"$bin/spinupd" --once --config "$work/d.conf" >"$work/once.log" 2>&1 ||
			{ echo "calls: spinupd --once failed:" >&2; tail -5 "$work/once.log" >&2; exit 1; }
		after=$(calls)
		ms=$(grep -o 'pass outcome=.* ms=[0-9]*' "$work/once.log" | tail -1 | grep -o '[0-9]*$')
		echo "| cloud calls per pass, $n instances ($pass pass) | $((after - before)) | calls |"
		echo "| pass time, $n instances, every agent unreachable ($pass pass) | $ms | ms |"
	done
done

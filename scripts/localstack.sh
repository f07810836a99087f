#!/bin/bash
# localstack.sh up|down|env|status - the whole system on real parts, locally.
#
#   eval "$(scripts/localstack.sh up)"   start everything, print exports for spinctl
#   eval "$(scripts/localstack.sh env)"  print the exports again
#   scripts/localstack.sh status         what runs, one line per part
#   scripts/localstack.sh down           stop exactly what `up` started
#
# The stack: a throwaway Postgres + Redis (scripts/devenv.sh), the schema
# (spinctl migrate), spinup-localcloud (the ASG/EC2 Query API on loopback,
# verifying SigV4) whose instances are real spinup-agent processes on their
# own loopback addresses 127.N.x.y with the process runtime (the built-in
# workspace stand-in, or code-server when installed), a folder standing
# in for the S3 bucket, and spinupd with its real AWS driver pointed at the
# provider and its HTTP agent driver.
#
# Everything lives in $LOCALSTACK_DIR (default .demo/ at the top of the tree):
#   bin/        copies of the binaries the stack runs (so a rebuild does not
#               change a running stack, and `pgrep -f $DIR/bin/` finds every
#               process of ours: agents and workspace stand-ins included)
#   devenv/     Postgres + Redis state     secrets/  agent secret, AWS files (0600)
#   bucket/     the "S3 bucket"            instances/<id>/  agent data dirs
#   logs/       localcloud.log, spinupd.log, instances/<id>.log
#   run/        pid files                  state     ports and settings
#
# Settings (environment, read by `up`):
#   LOCALSTACK_PERIOD      spinupd reconcile period, seconds (default 2)
#   LOCALSTACK_BOOT_DELAY  provider delay before an instance runs, ms (default 500)
#   LOCALSTACK_SYNC_INTERVAL  agents' periodic sync, seconds (default 60)
#   LOCALSTACK_SYNC_DELAY  seconds every sync sleeps first, standing in for a
#                          slow S3 sync (default 0); written to run/sync-delay,
#                          which each sync reads, so it can be changed live
#   LOCALSTACK_GROUP       the Auto Scaling group (default: asg of manifests/examples/pool.yaml)
#   LOCALSTACK_AGENT_PORT  agent port (default: agentPort of that pool, else 7070)
#   LOCALSTACK_MAX_SIZE    the group's max size at the provider (default 64)
#   LOCALSTACK_REGION      region (default: that pool's, else us-east-1)
#   LOCALSTACK_IDLE_COOLDOWN_MS  spinupd's plan_idle_cooldown_ms (default 60000)
#   LOCALSTACK_STANDIN=1   the built-in workspace even where code-server is installed
#   LOCALSTACK_NO_DAEMON=1 everything but spinupd (to drive the provider by hand)
#   SPINUP_BIN_DIR         where the binaries are (default bin/ at the top)
# Secrets are generated once, kept in files of mode 0600, and never printed.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
DIR=${LOCALSTACK_DIR:-$top/.demo}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
SRC_BIN=${SPINUP_BIN_DIR:-$top/bin}
case "$SRC_BIN" in /*) ;; *) SRC_BIN=$top/$SRC_BIN ;; esac
state=$DIR/state
BINS="spinupd spinctl spinup-agent spinup-localcloud"
REGION=${LOCALSTACK_REGION:-}

say() { echo "localstack: $*" >&2; }
die() { echo "localstack: $*" >&2; exit 1; }

# alive PIDFILE: the pid in it runs one of our binaries (not a recycled pid).
alive() {
	local pid exe
	[ -f "$1" ] || return 1
	pid=$(cat "$1" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
	case "$exe" in "$DIR"/bin/*) return 0 ;; esac
	return 1
}

# A value from the example pool manifest: yaml_value KEY... (first key found).
pool_value() {
	local f=$top/manifests/examples/pool.yaml k v
	[ -f "$f" ] || return 0
	for k in "$@"; do
		v=$(sed -nE "s/^[[:space:]]*$k:[[:space:]]*\"?([^\"#[:space:]]+)\"?.*/\1/p" "$f" | head -1)
		[ -n "$v" ] && { echo "$v"; return; }
	done
}

print_env() {
	[ -f "$state" ] || die "not running (no $state); run: scripts/localstack.sh up"
	# shellcheck disable=SC1090
	. "$state"
	DEVENV_DIR=$DIR/devenv "$top/scripts/devenv.sh" env
	cat <<EOS
export LOCALSTACK_DIR='$DIR'
export AWS_ENDPOINT_URL='http://127.0.0.1:$CLOUD_PORT'
export AWS_REGION='$REGION'
export AWS_SHARED_CREDENTIALS_FILE='$DIR/secrets/aws-credentials'
export AWS_CONFIG_FILE='$DIR/secrets/aws-config'
export AWS_EC2_METADATA_DISABLED=true
export SPINUP_AGENT_SECRET_FILE='$DIR/secrets/agent.secret'
export LOCALCLOUD_ADMIN_URL='http://127.0.0.1:$CLOUD_PORT/_admin'
export SPINUPD_METRICS_URL='http://127.0.0.1:${METRICS_PORT:-0}/metrics'
export PATH='$DIR/bin':"\$PATH"
EOS
}

install_bins() {
	local b
	mkdir -p "$DIR/bin"
	for b in $BINS; do
		[ -n "${LOCALSTACK_NO_DAEMON:-}" ] && [ "$b" = spinupd ] && continue
		[ -x "$SRC_BIN/$b" ] || die "$SRC_BIN/$b is not built; run make"
		# copy then rename: a running copy keeps its old file
		cp "$SRC_BIN/$b" "$DIR/bin/.$b.tmp" && mv -f "$DIR/bin/.$b.tmp" "$DIR/bin/$b"
	done
}

# Random secrets in files only this user can read; kept across up/down/up.
make_secrets() {
	local s=$DIR/secrets key secret
	mkdir -p "$s" && chmod 700 "$s"
	umask 077
	if [ ! -s "$s/agent.secret" ]; then
		head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$s/agent.secret.tmp"
		mv "$s/agent.secret.tmp" "$s/agent.secret"
	fi
	if [ ! -s "$s/aws-credentials" ]; then
		key=AKLS$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
		secret=$(head -c 30 /dev/urandom | base64 | tr -d '\n/+=' | head -c 40)
		printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
			"$key" "$secret" >"$s/aws-credentials.tmp"
		mv "$s/aws-credentials.tmp" "$s/aws-credentials"
	fi
	printf '[default]\nregion = %s\n' "$REGION" >"$s/aws-config"
	chmod 600 "$s"/*
	umask 022
}

# The command the provider runs for each instance: a real agent on the
# instance's own address, files restored from / synced to the bucket folder.
write_instance_cmd() {
	local wcmd='' f=$DIR/bin/instance.sh
	if command -v code-server >/dev/null 2>&1 && [ -z "${LOCALSTACK_STANDIN:-}" ]; then
		wcmd="exec $(command -v code-server) --bind-addr {addr}:{port} --auth none --disable-telemetry {dir}"
	fi
	cat >"$f.tmp" <<EOS
#!/bin/sh
# instance.sh ADDR ID - one local "EC2 instance": spinup-agent on ADDR.
# Written by scripts/localstack.sh up; started by spinup-localcloud.
addr=\${1:?usage: instance.sh ADDR ID}
id=\${2:?usage: instance.sh ADDR ID}
data='$DIR/instances'/\$id
mkdir -p "\$data" '$DIR/logs/instances'
exec '$DIR/bin/spinup-agent' --listen "\$addr:$AGENT_PORT" --id "\$id" \\
	--secret-file '$DIR/secrets/agent.secret' --data-dir "\$data" --runtime process \\
	${wcmd:+--workspace-cmd '$wcmd' }--sync-interval $SYNC_INTERVAL --stop-grace 3 --drain-timeout 5 \\
	--restore-cmd 'if [ -d "$DIR/bucket/"{bucket}/{prefix} ]; then cp -a "$DIR/bucket/"{bucket}/{prefix}/. {dir}/; fi' \\
	--sync-cmd 'sleep "\$(cat "$DIR/run/sync-delay" 2>/dev/null || echo 0)" && mkdir -p "$DIR/bucket/"{bucket}/{prefix} && cp -a {dir}/. "$DIR/bucket/"{bucket}/{prefix}/' \\
	>>'$DIR/logs/instances'/"\$id.log" 2>&1
EOS
	chmod 755 "$f.tmp" && mv "$f.tmp" "$f"
	f=$DIR/bin/instance-stop.sh
	cat >"$f.tmp" <<EOS
#!/bin/sh
# instance-stop.sh ADDR ID - the provider terminates an instance: like a VM
# powered off, its agent and workspaces die at once and its disk is gone.
# Written by scripts/localstack.sh up; run by spinup-localcloud.
id=\${2:?usage: instance-stop.sh ADDR ID}
data='$DIR/instances'/\$id
case "\$id" in *[!a-z0-9-]*) exit 2 ;; esac
for p in /proc/[0-9]*; do
	cwd=\$(readlink "\$p/cwd" 2>/dev/null) || continue
	case "\$cwd" in "\$data"/*) kill -KILL "\${p#/proc/}" 2>/dev/null ;; esac
done
pkill -KILL -f "^$DIR/bin/spinup-agent --listen .* --data-dir \$data " 2>/dev/null
rm -rf "\$data"
exit 0
EOS
	chmod 755 "$f.tmp" && mv "$f.tmp" "$f"
}

start_devenv() {
	DEVENV_DIR=$DIR/devenv "$top/scripts/devenv.sh" up >"$DIR/run/devenv.env" ||
		die "could not start Postgres/Redis (see above)"
	# shellcheck disable=SC1091
	. "$DIR/run/devenv.env"
	"$DIR/bin/spinctl" migrate >>"$DIR/logs/spinctl.log" 2>&1 ||
		{ tail -n 5 "$DIR/logs/spinctl.log" >&2; die "spinctl migrate failed"; }
}

# pick_net: N for instance addresses 127.N.x.y that nothing listens on yet
# (another stack on this machine, say the demo while tests run).
pick_net() {
	local n i hex
	for i in $(seq 1 50); do
		n=$((16 + RANDOM % 224))
		hex=$(printf '%02X' "$n")
		grep -qE "^ *[0-9]+: [0-9A-F]{4}${hex}7F:" /proc/net/tcp 2>/dev/null || { echo "$n"; return; }
	done
	die "no free 127.N.0.0/16 block for instance addresses"
}

start_localcloud() {
	local pf=$DIR/run/localcloud.pid log=$DIR/logs/localcloud.log i
	alive "$pf" && return 0
	rm -f "$DIR/run/localcloud.port"
	NET=$(pick_net)
	(
		cd "$DIR"
		exec setsid "$DIR/bin/spinup-localcloud" --listen 127.0.0.1:0 \
			--port-file "$DIR/run/localcloud.port" --region "$REGION" --net "$NET" \
			--credentials-file "$DIR/secrets/aws-credentials" \
			--group "$GROUP" --max-size "$MAX_SIZE" --boot-delay-ms "$BOOT_DELAY" \
			--agent-port "$AGENT_PORT" \
			--instance-cmd "$DIR/bin/instance.sh {addr} {id}" \
			--stop-cmd "$DIR/bin/instance-stop.sh {addr} {id}" \
			>>"$log" 2>&1 </dev/null
	) &
	echo $! >"$pf"
	for i in $(seq 1 100); do
		[ -s "$DIR/run/localcloud.port" ] && break
		kill -0 "$(cat "$pf")" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$DIR/run/localcloud.port" ] ||
		{ tail -n 20 "$log" >&2; die "spinup-localcloud did not start (log: $log)"; }
	CLOUD_PORT=$(cat "$DIR/run/localcloud.port")
}

free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 12768))   # below the ephemeral range (32768-): no outgoing connection holds it
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	die "no free loopback port"
}

# spinupd's configuration (reconciler/config.h): the aws driver at the
# provider, the http agent driver with the shared secret, short timers.
write_spinupd_conf() {
	local f=$DIR/spinupd.conf
	umask 077
	cat >"$f.tmp" <<EOS
# spinupd on the local stack; written by scripts/localstack.sh up
database_url = $DATABASE_URL
redis_url = $REDIS_URL
cloud = aws
agent = http
aws_region = $REGION
aws_endpoint = http://127.0.0.1:$CLOUD_PORT
agent_secret_file = $DIR/secrets/agent.secret
period_ms = $((PERIOD * 1000))
lease_ttl_ms = 6000
metrics_addr = 127.0.0.1:$METRICS_PORT
plan_launch_grace_ms = 20000
plan_register_timeout_ms = 30000
plan_backoff_base_ms = 500
plan_backoff_max_ms = 5000
plan_idle_cooldown_ms = ${LOCALSTACK_IDLE_COOLDOWN_MS:-60000}
EOS
	mv "$f.tmp" "$f"
	umask 022
}

start_spinupd() {
	local pf=$DIR/run/spinupd.pid log=$DIR/logs/spinupd.log i
	alive "$pf" && return 0
	METRICS_PORT=$(free_port)
	write_spinupd_conf
	(
		eval "$(print_env)"
		cd "$DIR"
		exec setsid "$DIR/bin/spinupd" --cloud aws --agent http --config "$DIR/spinupd.conf" \
			>>"$log" 2>&1 </dev/null
	) &
	echo $! >"$pf"
	for i in $(seq 1 50); do
		grep -q "leadership acquired" "$log" 2>/dev/null && return 0
		kill -0 "$(cat "$pf")" 2>/dev/null || break
		sleep 0.2
	done
	alive "$pf" && return 0
	tail -n 20 "$log" >&2
	die "spinupd exited at start (log: $log)"
}

save_state() {
	cat >"$state.tmp" <<EOS
CLOUD_PORT=$CLOUD_PORT
GROUP=$GROUP
AGENT_PORT=$AGENT_PORT
PERIOD=$PERIOD
REGION=$REGION
BOOT_DELAY=$BOOT_DELAY
SYNC_INTERVAL=$SYNC_INTERVAL
SYNC_DELAY=$SYNC_DELAY
MAX_SIZE=$MAX_SIZE
METRICS_PORT=${METRICS_PORT:-}
EOS
	mv "$state.tmp" "$state"
}

up() {
	if [ -f "$state" ]; then
		# shellcheck disable=SC1090
		. "$state"
	fi
	GROUP=${LOCALSTACK_GROUP:-${GROUP:-$(pool_value asg asg_name asgName)}}
	GROUP=${GROUP:-spinup-default}
	REGION=${REGION:-$(pool_value region)}
	REGION=${REGION:-us-east-1}
	AGENT_PORT=${LOCALSTACK_AGENT_PORT:-${AGENT_PORT:-$(pool_value agentPort agent_port)}}
	AGENT_PORT=${AGENT_PORT:-7070}
	PERIOD=${LOCALSTACK_PERIOD:-${PERIOD:-2}}
	BOOT_DELAY=${LOCALSTACK_BOOT_DELAY:-${BOOT_DELAY:-500}}
	SYNC_INTERVAL=${LOCALSTACK_SYNC_INTERVAL:-${SYNC_INTERVAL:-60}}
	SYNC_DELAY=${LOCALSTACK_SYNC_DELAY:-${SYNC_DELAY:-0}}
	case "$SYNC_DELAY" in '' | *[!0-9]*) die "LOCALSTACK_SYNC_DELAY must be whole seconds" ;; esac
	MAX_SIZE=${LOCALSTACK_MAX_SIZE:-${MAX_SIZE:-64}}
	mkdir -p "$DIR/run" "$DIR/logs/instances" "$DIR/bucket" "$DIR/instances"
	echo "$SYNC_DELAY" >"$DIR/run/sync-delay"
	alive "$DIR/run/spinupd.pid" || alive "$DIR/run/localcloud.pid" || install_bins
	make_secrets
	write_instance_cmd
	start_devenv
	start_localcloud
	save_state
	if [ -z "${LOCALSTACK_NO_DAEMON:-}" ]; then
		start_spinupd
		save_state
	fi
	say "up: provider http://127.0.0.1:$CLOUD_PORT group $GROUP, agents on port $AGENT_PORT, logs in $DIR/logs"
	print_env
}

# stop_pidfile FILE NAME: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pidfile() {
	local pf=$1 pid i
	alive "$pf" || { rm -f "$pf"; return 0; }
	pid=$(cat "$pf")
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && { say "$2 did not stop in 10 s, killing it"; kill -KILL "$pid" 2>/dev/null || true; }
	rm -f "$pf"
}

# ours [PATTERN]: pids of processes whose command line starts with
# $DIR/bin/PATTERN (directly, or through /bin/sh before its exec).
ours() { pgrep -f "^(/bin/sh (-c )?)?(exec )?'?$DIR/bin/${1:-}" 2>/dev/null || true; }

# in_instances: pids of processes working in an instance folder: workspaces
# run with their folder as working directory (code-server's children too).
in_instances() {
	local p cwd
	for p in /proc/[0-9]*; do
		cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
		case "$cwd" in "$DIR"/instances/*) echo "${p#/proc/}" ;; esac
	done
}

# Agents first (they may be mid-sync), then the workspaces they started
# (they live in their own sessions and outlive their agent).
stop_instances() {
	local pids i
	pids=$(ours 'spinup-agent --listen')
	[ -n "$pids" ] && kill -TERM $pids 2>/dev/null
	for i in $(seq 1 80); do
		[ -z "$(ours 'spinup-agent --listen')" ] && break
		sleep 0.1
	done
	pids=$(ours 'spinup-agent --listen')
	[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	pids="$(ours) $(in_instances)"
	[ -n "${pids// /}" ] && kill -TERM $pids 2>/dev/null
	for i in $(seq 1 50); do
		pids="$(ours) $(in_instances)"
		[ -z "${pids// /}" ] && break
		sleep 0.1
	done
	[ -n "${pids// /}" ] && kill -KILL $pids 2>/dev/null
	return 0
}

down() {
	[ -d "$DIR" ] || return 0
	stop_pidfile "$DIR/run/spinupd.pid" spinupd
	stop_pidfile "$DIR/run/localcloud.pid" spinup-localcloud
	stop_instances
	DEVENV_DIR=$DIR/devenv "$top/scripts/devenv.sh" down
	sleep 0.2
	local left
	left=$(echo $(ours) $(in_instances))
	if [ -n "$left" ]; then
		ps -o pid,args -p "${left// /,}" >&2 || true
		die "processes of $DIR/bin still run after down: $left"
	fi
	rm -f "$state" "$DIR/run/devenv.env"
	rm -rf "$DIR/instances"
	say "down: nothing of $DIR runs"
}

status() {
	local rc=0 n
	if [ ! -f "$state" ]; then
		echo "localstack: not running"
		return 1
	fi
	# shellcheck disable=SC1090
	. "$state"
	DEVENV_DIR=$DIR/devenv "$top/scripts/devenv.sh" status >/dev/null 2>&1 &&
		echo "devenv      running" || { echo "devenv      stopped"; rc=1; }
	alive "$DIR/run/localcloud.pid" && echo "localcloud  running pid $(cat "$DIR/run/localcloud.pid") http://127.0.0.1:$CLOUD_PORT group $GROUP" ||
		{ echo "localcloud  stopped"; rc=1; }
	alive "$DIR/run/spinupd.pid" && echo "spinupd     running pid $(cat "$DIR/run/spinupd.pid")" ||
		{ echo "spinupd     stopped"; rc=1; }
	n=$(ours 'spinup-agent --listen' | wc -l)
	echo "agents      $n running (port $AGENT_PORT)"
	n=$(ours 'spinup-agent workspace' | wc -l)
	echo "workspaces  $n stand-ins running"
	return $rc
}

case "${1:-}" in
up) up ;;
down) down ;;
env) print_env ;;
status) status ;;
-h|--help|"") sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; [ -n "${1:-}" ] ;;
*) die "unknown command '$1'; usage: scripts/localstack.sh up|down|env|status" ;;
esac

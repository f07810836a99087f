#!/bin/bash
# test_sdk.sh - spinup-localcloud cross-checked with the AWS SDK for
# JavaScript v3 (@aws-sdk/client-auto-scaling and @aws-sdk/client-ec2,
# pinned in tests/sdk/package.json): the SDK must accept every answer and
# the provider every SDK signature (tests/sdk/check.mjs).
#
# The SDK is installed into tests/sdk/node_modules (ignored by git) when
# missing. Exit 77 (skipped) only when node/npm are absent or npm cannot
# reach the registry; any other failure fails the test.
set -uo pipefail
top=${SPINUP_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${SPINUP_BIN_DIR:-$top/bin}
sdk=$top/tests/sdk

skip() { echo "SKIP test_sdk: $*"; exit 77; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	skip "node and npm are not installed (scripts/install-deps.sh installs them)"
if [ ! -d "$sdk/node_modules/@aws-sdk/client-ec2" ] ||
   [ ! -d "$sdk/node_modules/@aws-sdk/client-auto-scaling" ]; then
	echo "test_sdk: installing the AWS SDK into $sdk/node_modules"
	if ! (cd "$sdk" && timeout 300 npm ci --no-audit --no-fund --loglevel=error); then
		(cd "$sdk" && timeout 20 npm ping >/dev/null 2>&1) ||
			skip "npm cannot reach the registry"
		echo "test_sdk: npm ci failed with the registry reachable" >&2
		exit 1
	fi
fi
[ -x "$bin/spinup-localcloud" ] || { echo "test_sdk: $bin/spinup-localcloud is not built" >&2; exit 1; }

dir=$(mktemp -d /tmp/spinup-sdk-test.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
	fi
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

key=AKIDSDK$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077; printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$key" "$secret" >"$dir/credentials")
size=12 max=20
"$bin/spinup-localcloud" --listen 127.0.0.1:0 --port-file "$dir/port" \
	--credentials "$dir/credentials" --group "sdk-group:0:$max:$size" \
	--boot-delay-ms 20 --terminate-delay-ms 20 --instance-cmd '' \
	>"$dir/provider.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$dir/port" ] && break; sleep 0.05; done
[ -s "$dir/port" ] || { cat "$dir/provider.log"; echo "test_sdk: provider did not start" >&2; exit 1; }

LC_URL="http://127.0.0.1:$(cat "$dir/port")" LC_KEY=$key LC_SECRET=$secret \
LC_GROUP=sdk-group LC_SIZE=$size LC_MAX=$max \
AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
	node "$sdk/check.mjs"
rc=$?
# the provider must stop cleanly on SIGTERM (sanitizer builds report through it)
kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null
wait "$pid"
prc=$?
pid=
if [ $prc -ne 0 ] || grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$dir/provider.log"; then
	echo "test_sdk: the provider exited $prc or reported a sanitizer error"
	rc=1
fi
if [ $rc -ne 0 ]; then
	echo "---- provider log (last 30 lines)"
	tail -n 30 "$dir/provider.log"
fi
exit $rc

# Shell functions the benchmark scripts share; `source benches/lib.sh` after `cd` to the
# repository. Nothing runs when sourced.

# A loopback port nothing listens on right now.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# with_cleanup NAME: makes TMP (a fresh temp dir named after NAME) and PIDS (the processes this
# script starts: append each one's PID), and on exit, however it comes, ends every process in
# PIDS, waits for them, runs the caller's `extra_cleanup` if it defines one (after the
# processes are gone: e.g. stopping a database they used) and removes TMP. Call it once,
# before starting anything.
with_cleanup() {
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
	PIDS=()
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if declare -F extra_cleanup >/dev/null; then extra_cleanup; fi
	rm -rf "$TMP"
}

# wait_ready URL PID LOG: waits (up to 30 s) until URL/readyz answers 200; exits 1 with LOG on
# stderr if the process PID ends first or it never does.
wait_ready() {
	for _ in $(seq 1 300); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1/readyz")" = 200 ] && return 0
		kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 1; }
		sleep 0.1
	done
	echo "$1 did not become ready" >&2
	cat "$3" >&2
	exit 1
}

# The Garage binary `.ci/garage` builds (ENCORE_GARAGE names another), or exit 2 saying how to
# get it.
garage_binary() {
	local g=${ENCORE_GARAGE:-$HOME/.cache/encore-test/garage-2.5.0/bin/garage}
	[ -x "$g" ] || { echo "$0: no Garage at $g: run bash .ci/garage" >&2; exit 2; }
	echo "$g"
}

# start_garage DIR: a single-node Garage with its data in DIR, on free loopback ports, with
# the bucket `encore` and a key of its own; exports the AWS_* variables encore reads and sets
# GARAGE_PID. The bucket answers a moment after the process starts: callers retry their
# first request.
start_garage() {
	local dir=$1 garage rpc s3 admin
	garage=$(garage_binary)
	rpc=$(free_port) s3=$(free_port) admin=$(free_port)
	mkdir -p "$dir"
	cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$admin"
EOF
	AWS_ACCESS_KEY_ID="GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	AWS_SECRET_ACCESS_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
	export AWS_REGION=garage AWS_ENDPOINT_URL=http://127.0.0.1:$s3 AWS_ALLOW_HTTP=true
	GARAGE_DEFAULT_ACCESS_KEY=$AWS_ACCESS_KEY_ID GARAGE_DEFAULT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
		GARAGE_DEFAULT_BUCKET=encore RUST_LOG=warn \
		"$garage" -c "$dir/garage.toml" server --single-node --default-bucket >"$dir/out" 2>&1 &
	GARAGE_PID=$!
}

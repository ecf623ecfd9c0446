#!/usr/bin/env bash
# Autobahn WebSocket conformance, through kosoku (the Autobahn TestSuite cases on Python 3):
#   server role: a Web Server DAT echoing every message through its callbacks
#                (scripts/conformance/echo_server.ron), driven by `kosoku -m fuzzingclient`;
#   client role: a WebSocket DAT echoing back what it receives, driven case by case through the
#                fuzzing server's getCaseCount / runCase / updateReports
#                (scripts/conformance/echo_client.ron), against `kosoku -m fuzzingserver`.
# Cases 12.x and 13.x (permessage-deflate, which tungstenite does not implement) are excluded.
# Prints the pass counts per role; exits non-zero if any case fails.
#
# Usage: scripts/conformance.sh [server|client|all]     (default: all)
# Environment: CONFORMANCE_DIR  where the venv and the reports go (default target/conformance)
#              DATPATCH_BIN     the binary under test (default: `cargo build`, target/debug/datpatch)
#              PARALLEL         cases run at once in the server role (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."

role=${1:-all}
target=${CARGO_TARGET_DIR:-target}
out=${CONFORMANCE_DIR:-$target/conformance}
mkdir -p "$out"
out=$(cd "$out" && pwd)
venv=$out/venv

if [ ! -x "$venv/bin/kosoku" ]; then
    echo "== installing kosoku into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'kosoku==0.1.0'
fi

bin=${DATPATCH_BIN:-}
if [ -z "$bin" ]; then
    cargo build --quiet --bin datpatch
    bin=$target/debug/datpatch
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until $1 (a log file) contains $2, for at most $3 seconds.
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for \"$2\" in $1" >&2
    cat "$1" >&2
    return 1
}

# Prints the counts of one role's report ($1: index.json, $2: title, $3: one word) and fails if
# any case failed.
summarize() {
    python3 - "$1" "$2" "$3" <<'EOF'
import collections, json, sys
index, role, word = sys.argv[1], sys.argv[2], sys.argv[3]
with open(index) as f:
    agents = json.load(f)
cases = {k: v for agent in agents.values() for k, v in agent.items()}
passed = lambda c: c["behavior"] in ("OK", "NON-STRICT", "INFORMATIONAL") and c["behaviorClose"] in ("OK", "INFORMATIONAL")
counts = collections.Counter(c["behavior"] for c in cases.values())
failed = sorted((k for k, c in cases.items() if not passed(c)), key=lambda k: [int(p) for p in k.split(".")])
detail = ", ".join(f"{n} {b}" for b, n in sorted(counts.items()))
print(f"{role}: {len(cases) - len(failed)}/{len(cases)} cases passed ({detail})")
print(f"{word}: {len(cases) - len(failed)} passed, {len(failed)} failed")
if failed:
    print(f"{role}: failed: {' '.join(failed)}")
    sys.exit(1)
EOF
}

status=0
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

run_server_role() {
    local port pid started
    started=$SECONDS
    port=$(free_port)
    "$bin" run scripts/conformance/echo_server.ron --set "web.port=$port" 2>"$out/server-datpatch.log" &
    pid=$!
    pids+=("$pid")
    wait_for "$out/server-datpatch.log" "listening on" 30
    rm -rf "$out/servers"
    "$venv/bin/kosoku" -m fuzzingclient -x '12.*' -x '13.*' -p "${PARALLEL:-2}" \
        -o "$out/servers" "127.0.0.1:$port" >"$out/server-kosoku.log" 2>&1 || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    summarize "$out/servers/index.json" "server role (Web Server DAT)" autobahn-server || status=1
    echo "server role: $((SECONDS - started)) s; reports in $out/servers"
}

run_client_role() {
    local port pid kpid started
    started=$SECONDS
    port=$(free_port)
    rm -rf "$out/clients"
    "$venv/bin/kosoku" -m fuzzingserver -x '12.*' -x '13.*' -o "$out/clients" \
        "127.0.0.1:$port" >"$out/client-kosoku.log" 2>&1 &
    kpid=$!
    pids+=("$kpid")
    wait_for "$out/client-kosoku.log" "fuzzingserver listening" 30
    "$bin" run scripts/conformance/echo_client.ron --set "ws.port=$port" \
        2>"$out/client-datpatch.log" &
    pid=$!
    pids+=("$pid")
    # The driver asks the fuzzing server for its reports once every case has run; kosoku then ends.
    wait "$kpid" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    summarize "$out/clients/index.json" "client role (WebSocket DAT)" autobahn-client || status=1
    echo "client role: $((SECONDS - started)) s; reports in $out/clients"
}

case $role in
server) run_server_role ;;
client) run_client_role ;;
all)
    run_server_role
    run_client_role
    ;;
*)
    echo "usage: $0 [server|client|all]" >&2
    exit 2
    ;;
esac
exit $status

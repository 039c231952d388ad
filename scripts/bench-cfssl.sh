#!/usr/bin/env bash
# Peer figure for Docs/BENCHMARKS.md: cfssl's `serve` sign throughput on this machine, driven by
# wrk over loopback with the same concurrency as `rampart bench ca`. cfssl gets a P-256 CA made by
# openssl and signs a P-256 CSR on every request (HTTP, no TLS, no durable store).
#   usage: scripts/bench-cfssl.sh [seconds] [connections]
set -euo pipefail
seconds=${1:-10}
connections=${2:-32}
need=()
command -v cfssl >/dev/null || need+=(golang-cfssl)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
if [ "${#need[@]}" -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; fi

work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca-key.pem -out ca.pem \
  -days 3650 -subj "/O=cluster.local/CN=cfssl bench root" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout w.key -out w.csr -subj "/CN=w" 2>/dev/null
cat > config.json <<'JSON'
{"signing": {"default": {"expiry": "24h", "usages": ["digital signature", "server auth", "client auth"]}}}
JSON
port=$((20000 + RANDOM % 20000))
cfssl serve -ca ca.pem -ca-key ca-key.pem -config config.json -address 127.0.0.1 -port "$port" -loglevel 5 >cfssl.log 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/api/v1/cfssl/info" -d '{}' && break; sleep 0.1; done
python3 - "$work/w.csr" > body.json <<'PY'
import json, sys
print(json.dumps({"certificate_request": open(sys.argv[1]).read()}))
PY
cat > post.lua <<'LUA'
local f = io.open("body.json", "r"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body; wrk.headers["Content-Type"] = "application/json"
LUA
# Check one request signs before measuring.
curl -s "http://127.0.0.1:$port/api/v1/cfssl/sign" -H 'Content-Type: application/json' -d @body.json | grep -q '"success":true'
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s post.lua "http://127.0.0.1:$port/api/v1/cfssl/sign"

#!/usr/bin/env bash
# Runs the CA on the embedded defaults: a new CA in a temporary state directory, served on
# loopback; a few sample workloads get identities (bootstrap token + openssl CSR), one renews over
# mTLS, a node agent bootstraps another and rotates it, two workloads call each other through
# companion proxies over mTLS while a policy is applied and removed, the example mesh policies are
# analyzed, applied and explained, and the issued certificates are listed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
swift build --product rampart
rampart=$(swift build --show-bin-path)/rampart
work=$(mktemp -d)
state="$work/state"
cleanup() {
  for pid in ${mesh_pids:-}; do kill "$pid" 2>/dev/null; done
  [ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null
  [ -n "${ca_pid:-}" ] && kill "$ca_pid" 2>/dev/null
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

"$rampart" ca init --state "$state" --trust-domain cluster.local
"$rampart" ca serve --state "$state" --listen 127.0.0.1:0 --admin 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.log" &
ca_pid=$!
for _ in $(seq 1 100); do grep -q 'ready' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
grpc=$(sed -n 's/.*grpc=\([^ ]*\).*/\1/p' "$work/serve.out")
admin=$(sed -n 's/.*admin=\([^ ]*\).*/\1/p' "$work/serve.out")
[ -n "$grpc" ] || { echo "the CA did not start:"; cat "$work/serve.log"; exit 1; }
echo "CA serving gRPC on $grpc, admin on $admin"

for workload in default/web shop/cart shop/checkout; do
  ns=${workload%/*}; sa=${workload#*/}
  id="spiffe://cluster.local/ns/$ns/sa/$sa"
  token=$("$rampart" token create --state "$state" --spiffe-id "$id" --ttl 5m)
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/" \
    -keyout "$work/$sa.key" -out "$work/$sa.csr" 2>/dev/null
  "$rampart" cert request --ca "$grpc" --root-cert "$state/root-cert.pem" --csr "$work/$sa.csr" --token "$token" --out "$work/$sa.pem"
  echo "$id: $(openssl verify -x509_strict -CAfile "$state/root-cert.pem" "$work/$sa.pem")"
done
"$rampart" cert request --ca "$grpc" --root-cert "$state/root-cert.pem" --csr "$work/web.csr" \
  --cert "$work/web.pem" --key "$work/web.key" --out "$work/web-renewed.pem"
echo "web renewed over mTLS: $(openssl verify -CAfile "$state/root-cert.pem" "$work/web-renewed.pem")"

echo
echo "node agent for spiffe://cluster.local/ns/shop/sa/payments (20 s certificates, Workload API on a socket):"
"$rampart" token create --state "$state" --spiffe-id spiffe://cluster.local/ns/shop/sa/payments >"$work/payments.token"
"$rampart" agent --ca-address "$grpc" --ca-root "$state/root-cert.pem" --token-file "$work/payments.token" \
  --out "$work/payments" --socket "$work/agent.sock" --ttl 20s 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 1 100); do [ -S "$work/agent.sock" ] && [ -f "$work/payments/key.pem" ] && break; sleep 0.1; done
first=$(openssl x509 -noout -serial -in "$work/payments/cert-chain.pem")
echo "  $(ls "$work/payments" | tr '\n' ' ')— $first"
for _ in $(seq 1 300); do
  now=$(openssl x509 -noout -serial -in "$work/payments/cert-chain.pem" 2>/dev/null || true)
  [ -n "$now" ] && [ "$now" != "$first" ] && break
  sleep 0.1
done
echo "  rotated over mTLS — $now"
"$rampart" agent status --socket "$work/agent.sock" | sed 's/^/  /'
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=

echo
echo "companion proxies: workload a calls workload b through both proxies over mTLS"
mesh_pids=""
for w in a b; do
  python3 Tests/Interop/echo_app.py "$w" >"$work/$w-app.out" 2>&1 &
  mesh_pids="$mesh_pids $!"
  "$rampart" token create --state "$state" --spiffe-id "spiffe://cluster.local/ns/demo/sa/$w" >"$work/$w.token"
  "$rampart" agent --ca-address "$grpc" --ca-root "$state/root-cert.pem" --token-file "$work/$w.token" \
    --out "$work/$w-identity" --ttl 1h 2>"$work/$w-agent.log" &
  mesh_pids="$mesh_pids $!"
done
for w in a b; do
  for _ in $(seq 1 100); do grep -q listening "$work/$w-app.out" && [ -f "$work/$w-identity/key.pem" ] && break; sleep 0.1; done
  app_port=$(sed -n 's/listening //p' "$work/$w-app.out")
  "$rampart" proxy --workload "$w" --namespace demo --labels "app=$w,version=v1" --service "$w:$app_port" \
    --app "127.0.0.1:$app_port" --inbound 127.0.0.1:0 --outbound 127.0.0.1:0 --admin 127.0.0.1:0 \
    --control-plane "$grpc" --ca-root "$state/root-cert.pem" --identity-dir "$work/$w-identity" \
    --access-log "$work/$w-access.log" 2>"$work/$w-proxy.log" &
  mesh_pids="$mesh_pids $!"
done
for w in a b; do
  for _ in $(seq 1 200); do grep -q 'proxy ready' "$work/$w-proxy.log" && break; sleep 0.1; done
done
a_out=$(grep 'proxy ready' "$work/a-proxy.log" | sed -n 's/.* outbound=\([^ ]*\).*/\1/p')
b_admin=$(grep 'proxy ready' "$work/b-proxy.log" | sed -n 's/.* admin=\([^ ]*\).*/\1/p')
call_b() { curl -s -o "$work/reply" -w '%{http_code}' -H 'Host: b' "http://$a_out/hello"; }
for _ in $(seq 1 100); do [ "$(call_b)" = 200 ] && break; sleep 0.2; done
echo "  GET http://b/hello via a's proxy: $(call_b)"
python3 -c 'import json,sys; h=json.load(open(sys.argv[1]))["headers"]; print("  b saw x-forwarded-client-cert:", h.get("x-forwarded-client-cert"))' "$work/reply"
cat >"$work/deny-a.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-a, namespace: demo}
spec:
  selector: {matchLabels: {app: b}}
  action: DENY
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/demo/sa/a"]}
YAML
"$rampart" apply -f "$work/deny-a.yaml" --state "$state"
for _ in $(seq 1 40); do [ "$(call_b)" = 403 ] && break; sleep 0.05; done
echo "  after the DENY policy: $(call_b) $(cat "$work/reply")"
"$rampart" delete authorizationpolicy deny-a -n demo --state "$state"
for _ in $(seq 1 40); do [ "$(call_b)" = 200 ] && break; sleep 0.05; done
echo "  after deleting it: $(call_b)"
"$rampart" status --admin "$admin" | sed 's/^/  /'
curl -s "http://$b_admin/stats/prometheus" | grep '^istio_requests_total' | sed 's/^/  /'
for pid in $mesh_pids; do kill "$pid" 2>/dev/null; done
wait $mesh_pids 2>/dev/null || true
mesh_pids=""

echo
echo "mesh policies from policies/, checked, stored, and picked up by the running CA:"
"$rampart" analyze policies/
"$rampart" apply -f policies/ --state "$state"
"$rampart" get authorizationpolicies -A --state "$state"
cat >"$work/request.yaml" <<'REQ'
protocol: HTTP
source: {principal: cluster.local/ns/shop/sa/frontend}
destination: {namespace: shop, labels: {app: cart}, port: 8080}
method: DELETE
host: cart.shop.svc.cluster.local
path: /api/cart/items/1
REQ
echo "why is DELETE /api/cart/items/1 from shop/frontend to shop/cart decided as it is?"
"$rampart" authz check --policies policies/ --request "$work/request.yaml" --explain | sed 's/^/  /'
for _ in $(seq 1 30); do curl -s "http://$admin/metrics" | grep -q '^rampart_config_version [1-9]' && break; sleep 0.2; done
curl -s "http://$admin/metrics" | grep '^rampart_config_'

echo
"$rampart" cert list --state "$state"
echo
curl -s "http://$admin/metrics" | grep '^rampart_ca_issuances_total'
"$rampart" audit verify --state "$state"

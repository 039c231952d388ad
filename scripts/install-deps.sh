#!/usr/bin/env bash
# Installs what Rampart needs on a fresh Debian machine with Swift: the SQLite headers GRDB links
# against, openssl (interoperability checks and the benchmark's peer), and, with --test, the Python
# packages of the independent gRPC, JOSE and SPIFFE Workload API clients used by the tests, and
# Debian's Prometheus server, which scrapes the proxies in the end-to-end tests; with --bench, wrk,
# h2load and HAProxy for `rampart bench proxy` (the load generators, HTTP/1.1 and gRPC, and the peer
# proxy).
set -euo pipefail
packages=()
dpkg -s libsqlite3-dev >/dev/null 2>&1 || packages+=(libsqlite3-dev)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
command -v curl >/dev/null 2>&1 || packages+=(curl)
if [ "${1:-}" = "--bench" ]; then
  command -v wrk >/dev/null 2>&1 || packages+=(wrk)
  command -v haproxy >/dev/null 2>&1 || packages+=(haproxy)
  command -v h2load >/dev/null 2>&1 || packages+=(nghttp2-client)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${packages[@]}"
fi
if [ "${1:-}" = "--test" ] && ! command -v prometheus >/dev/null 2>&1; then
  # A real Prometheus server scrapes the proxies in the end-to-end tests.
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus
fi
if [ "${1:-}" = "--test" ]; then
  if ! python3 -c 'import grpc, grpc_tools, joserfc, spiffe, opentelemetry.proto' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check grpcio grpcio-tools joserfc spiffe opentelemetry-proto
  fi
fi

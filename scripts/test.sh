#!/usr/bin/env bash
# The whole test suite: unit tests, store tests on real SQLite files, and end-to-end tests that
# start `rampart ca serve` as a process and drive it with Rampart's client, openssl and an
# independent Python gRPC client.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
swift build --build-tests
swift test --skip-build 2>&1 | tee .build/test-output.txt

#!/usr/bin/env bash
# The whole test suite: unit tests, store tests on real SQLite files, and end-to-end tests that
# start `rampart ca serve` as a process and drive it with Rampart's client, openssl and an
# independent Python gRPC client.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
swift build --build-tests
# Unit and store tests first, then the end-to-end tests on their own and one at a time: some unit
# tests keep both cores busy for seconds, and the end-to-end tests run a CA, agents, proxies and
# applications as real processes and hold them to one-second deadlines.
swift test --skip-build --skip RampartEndToEndTests 2>&1 | tee .build/test-output.txt
swift test --skip-build --no-parallel --filter RampartEndToEndTests 2>&1 | tee -a .build/test-output.txt

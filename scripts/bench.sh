#!/usr/bin/env bash
# Benchmarks that print their figures and the machine (never timed assertions in tests):
#   1. status --all --live over 1,000 emulated tenants at 50 ms per response
#   2. one onboard at 50 ms per response: HTTP requests and wall time against their floor
#   3. cold start of `hybrid-trust cert inspect` against `openssl x509 -noout -fingerprint -dates`
#   4. renew --all over 1,000 due tenants at 50 ms per response: wall against its floor, client CPU
#   5. remind --all over 1,000 due tenants with one webhook: client CPU per tenant
#   6. the ledger at 10 and 10,000 tenants: one change (the ratio), and status --all
#   7. the team's state: renew --all over 1,000 due tenants with PostgreSQL against files, and two
#      hosts sharing the 1,000 tenants: wall time and client CPU per tenant (needs postgresql)
# Usage: scripts/bench.sh [--tenants N] [--latency-ms MS] [--concurrency N] [--only NAME]
# Where the test suite's time goes: scripts/suite-times.sh [nextest arguments].
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 scripts/bench.py "$@"

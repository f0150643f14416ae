#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs
# cargo fmt --check, clippy with -D warnings, and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

# 1. Python venv: Microsoft's MSAL (interoperability), PyJWT (independent JWT verifier),
#    aiosmtpd (real SMTP server on loopback).
venv="${HYBRID_TRUST_VENV:-$PWD/.venv-test}"
if ! "$venv/bin/python" - <<'PY' 2>/dev/null
import msal, jwt, aiosmtpd, cryptography
PY
then
  log "creating Python test venv in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
fi
export HYBRID_TRUST_TEST_PYTHON="$venv/bin/python"

# 2. Rust checks and tests.
log "cargo fmt --check"
cargo fmt --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --all-features -- -D warnings
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --all-targets --no-fail-fast
  cargo test --doc --quiet
else
  cargo test --all-targets --no-fail-fast
fi

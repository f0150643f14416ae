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
import msal, jwt, aiosmtpd, cryptography, msgraph, azure.identity
PY
then
  log "creating Python test venv in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/test-requirements.txt
fi
export HYBRID_TRUST_TEST_PYTHON="$venv/bin/python"

# 2. Debian packages for the keyring tests: a real Secret Service (gnome-keyring on a private
#    D-Bus session) and the kernel keyring (keyctl); faketime for the simulated-year test;
#    Chromium (headless) for the HTML report's browser test (tests/report_browser.rs).
missing=()
command -v dbus-run-session >/dev/null || missing+=(dbus)
command -v gnome-keyring-daemon >/dev/null || missing+=(gnome-keyring)
command -v keyctl >/dev/null || missing+=(keyutils)
command -v faketime >/dev/null || missing+=(faketime)
command -v chromium >/dev/null || missing+=(chromium fonts-dejavu-core)
# PostgreSQL's server for the team-state tests (tests/team_state.rs starts a throwaway cluster
# per test binary from /usr/lib/postgresql/*/bin, as the postgres user when run as root).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 3. Rust checks and tests.
log "cargo fmt --all --check"
cargo fmt --all --check
log "cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings
log "cargo deny check licenses bans sources (+ advisories where the RustSec database is reachable)"
if ! command -v cargo-deny >/dev/null 2>&1; then
  log "installing cargo-deny (once)"
  cargo install --locked --quiet cargo-deny
fi
cargo deny --log-level error check licenses bans sources
# Advisories need the RustSec database, fetched from github.com. Where it can be fetched, a known
# advisory fails the run; where it cannot (this CI machine reaches only crates.io, PyPI and
# Debian), the run says so on one line instead of pretending.
if getent hosts github.com >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  log "cargo deny check advisories: NOT RUN: github.com (the RustSec database) is unreachable here"
fi
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast
  cargo test --workspace --doc --quiet
else
  cargo test --workspace --all-targets --no-fail-fast
fi

#!/usr/bin/env bash
# Installs what the PostgreSQL store tests need: Debian's postgresql (initdb, pg_ctl and the
# server), with apt-get as root or through sudo (tests/apt.sh). The tests start a private
# cluster from these binaries under target/postgres-test/ (src/store/test_postgres.rs) and run
# this script themselves when the binaries are missing, as `.ci/run` does before `cargo test`;
# it does nothing when they are there.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
source "$(dirname "$0")/../apt.sh"
apt_install postgresql

#!/usr/bin/env bash
# Installs what the metrics test needs: Debian's prometheus server, with apt-get as root or
# through sudo (tests/apt.sh). tests/api/metrics.rs starts it itself, on a config written from
# tests/prometheus/prometheus.yml, and runs this script when the binary is missing, as `.ci/run`
# does before `cargo test`; it does nothing when it is there.
set -euo pipefail
if [ -x /usr/bin/prometheus ]; then
  exit 0
fi
source "$(dirname "$0")/../apt.sh"
apt_install prometheus

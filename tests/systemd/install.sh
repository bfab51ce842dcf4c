#!/usr/bin/env bash
# Installs what the systemd unit's test (tests/api/packaging.rs) needs: `systemd-analyze`, from
# Debian's `systemd` package, to verify packaging/switchboard.service and score its hardening
# offline (no running systemd needed, so it works in a container). The test runs it
# (tests/api/install.rs), as `.ci/run` does before `cargo test`; it does nothing when the
# program is there. apt-get runs as root, or through sudo (tests/apt.sh).
set -euo pipefail
if [[ -x /usr/bin/systemd-analyze ]]; then
  exit 0
fi
source "$(dirname "$0")/../apt.sh"
apt_install systemd
/usr/bin/systemd-analyze --version | head -n 1

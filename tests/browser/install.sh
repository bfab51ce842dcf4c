#!/usr/bin/env bash
# Installs what the browser tests (tests/api/browser.rs) need: Debian's `chromium` and
# `chromium-driver` packages, which give /usr/bin/chromium and /usr/bin/chromedriver of the same
# version, and `fonts-liberation` (which chromium only recommends) so that screenshots show
# readable text on a minimal system. The browser tests run it when either program is missing
# (tests/api/install.rs), and `.ci/run` before `cargo test`. Idempotent: it does nothing when
# both are installed. apt-get runs as root, or through sudo (tests/apt.sh).
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
source "$(dirname "$0")/../apt.sh"
apt_install chromium chromium-driver fonts-liberation
/usr/bin/chromium --version 2>/dev/null # its launcher script warns about /dev/shm on some systems
/usr/bin/chromedriver --version

#!/usr/bin/env bash
# Installs what the browser tests (tests/api/browser.rs) need: Debian's `chromium` and
# `chromium-driver` packages, which give /usr/bin/chromium and /usr/bin/chromedriver of the same
# version, and `fonts-liberation` (which chromium only recommends) so that screenshots show
# readable text on a minimal system. `.ci/run` calls this before `cargo test`; the tests only
# check that both programs are there, and otherwise fail, asking for this script. Idempotent: it
# does nothing when both are installed.
# Runs apt-get as root, or through sudo otherwise; `apt-get update` only when the package lists
# are missing or stale (the first install attempt failed).
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi
as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "tests/browser/install.sh: needs root, or sudo, to apt-get install chromium chromium-driver" >&2
    exit 1
  fi
  as_root=(sudo)
fi
install_packages() {
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install --yes --quiet --no-install-recommends chromium chromium-driver fonts-liberation
}
if ! install_packages; then
  echo "tests/browser/install.sh: retrying after apt-get update" >&2
  "${as_root[@]}" apt-get update --quiet
  install_packages
fi
/usr/bin/chromium --version 2>/dev/null # its launcher script warns about /dev/shm on some systems
/usr/bin/chromedriver --version

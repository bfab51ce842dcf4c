#!/usr/bin/env bash
# Installs what the Python SDK test needs: Twilio's official `twilio` package from PyPI, pinned,
# in a virtualenv under target/ (never committed). `.ci/run` calls this before `cargo test`, and
# the test calls it each time (it does nothing when the package is already there). Needs
# python3 with its venv module and pip.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/sdk-venv
version=9.13.0
if "$venv/bin/python" -c "import twilio, sys; sys.exit(twilio.__version__ != '$version')" 2>/dev/null; then
  exit 0
fi
if ! python3 -m venv --clear "$venv"; then
  echo "tests/sdk/install.sh: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
  exit 1
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "twilio==$version"
"$venv/bin/python" -c "import twilio; print('twilio', twilio.__version__, 'in', '$venv')"

#!/usr/bin/env bash
# Installs what the Python SDK test needs: Twilio's official `twilio` package from PyPI, in a
# virtualenv under target/ (never committed). `.ci/run` calls this before `cargo test`; the
# test calls it too when the virtualenv is missing. Needs python3 with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import twilio" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "twilio>=9,<10"
fi
"$venv/bin/python" -c "import twilio; print('twilio', twilio.__version__, 'in', '$venv')"

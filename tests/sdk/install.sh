#!/usr/bin/env bash
# Installs what the Python SDK test needs: Twilio's official `twilio` package from PyPI, pinned,
# in a virtualenv under target/ (never committed), with python3's venv and pip (tests/venv.sh).
# The test runs it (tests/api/install.rs), as `.ci/run` does before `cargo test`; it does
# nothing when the package is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/sdk-venv
version=9.13.0
if "$venv/bin/python" -c "import twilio, sys; sys.exit(twilio.__version__ != '$version')" 2>/dev/null; then
  exit 0
fi
source tests/venv.sh
venv_install "$venv" "twilio==$version"
"$venv/bin/python" -c "import twilio; print('twilio', twilio.__version__, 'in', '$venv')"

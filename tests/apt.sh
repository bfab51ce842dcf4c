# Sourced by the install scripts under tests/ (tests/api/install.rs runs them when a test needs
# what they install; `.ci/run` runs them before `cargo test`). `apt_install PACKAGE...`
# installs Debian packages with apt-get, as root or through sudo, and runs `apt-get update` only
# when a first attempt fails (package lists missing or stale). Without a terminal on standard
# input, as under `cargo test`, sudo must not ask for a password (`sudo -n`): nobody would see
# the question, and the test would wait for ever.
apt_install() {
  local as_root=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "$0: needs root, or sudo, to apt-get install $*" >&2
      return 1
    fi
    as_root=(sudo)
    if [[ ! -t 0 ]]; then
      as_root+=(-n)
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    echo "$0: no apt-get here: install the equivalent of Debian's $* with this system's package manager" >&2
    return 1
  fi
  local install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive
    apt-get install --yes --quiet --no-install-recommends "$@")
  if ! "${install[@]}"; then
    echo "$0: retrying after apt-get update" >&2
    "${as_root[@]}" apt-get update --quiet
    "${install[@]}"
  fi
}

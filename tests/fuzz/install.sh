#!/usr/bin/env bash
# Installs what the coverage-guided fuzz targets need (fuzz/, run by tests/fuzz.rs): cargo-fuzz,
# pinned, built from crates.io with the machine's own toolchain, and a C++ compiler for
# libFuzzer itself (Debian's g++, with apt-get as root or through sudo: tests/apt.sh) if there
# is none. The test runs it (tests/api/install.rs), as `.ci/run` does before `cargo test`; it
# does nothing when both are there. The targets build on stable Rust: they run without a
# sanitizer (`-s none`), which is the one part of cargo fuzz that needs a nightly compiler.
set -euo pipefail
version=0.13.2
if ! command -v c++ >/dev/null; then
  source "$(dirname "$0")/../apt.sh"
  apt_install g++
fi
if cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $version"; then
  exit 0
fi
cargo install --quiet --locked cargo-fuzz --version "$version"
cargo fuzz --version

#!/usr/bin/env bash
# Installs what the coverage-guided fuzz targets need (fuzz/, run by tests/fuzz.rs): cargo-fuzz,
# pinned, built from crates.io with the machine's own toolchain. `.ci/run` calls this before
# `cargo test`, and the test calls it each time (it does nothing when cargo-fuzz is there). The
# targets build on stable Rust: they run without a sanitizer (`-s none`), which is the one part
# of cargo fuzz that needs a nightly compiler.
set -euo pipefail
version=0.13.2
if cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $version"; then
  exit 0
fi
cargo install --quiet --locked cargo-fuzz --version "$version"
cargo fuzz --version

#!/usr/bin/env bash
# Every test Linli has, from a fresh clone: lints, Rust tests (unit,
# integration, property, crash, end-to-end), the benchmark in quick mode (so it
# cannot rot), and the Python bindings in a real CPython process.
# Installs what it needs; CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "tools"
if ! python3 -c 'import pytest' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pytest
fi

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "rust tests"
cargo test --workspace --locked

step "benchmark (quick mode, checks it runs)"
LINLI_BENCH_QUICK=1 cargo test --locked -p linli-core --bench store

step "python bindings"
cargo build --locked -p linli-ffi --features bindgen --bin uniffi-bindgen
out=bindings/generated/python
rm -rf "$out" && mkdir -p "$out"
./target/debug/uniffi-bindgen generate --library target/debug/liblinli_ffi.so --language python --out-dir "$out" >/dev/null
cp target/debug/liblinli_ffi.so "$out/"
LINLI_PY_BINDINGS="$out" python3 -m pytest -q bindings/tests/python

#!/usr/bin/env bash
# Every test Linli has, from a fresh clone: lints; Rust tests (unit,
# integration, property, crash, end-to-end with a real server); the
# benchmarks in quick mode (so they cannot rot); the bindings from a real JVM
# (Kotlin) and a real CPython, each against a real linli-server on loopback;
# and Swift generation. Installs what it needs; CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=$root/.tools
out=$(realpath -m "${CARGO_TARGET_DIR:-target}")/debug
mkdir -p "$tools"

step() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "tools"
if ! python3 -c 'import pytest' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore pytest
fi
if [ ! -f /usr/share/java/jna.jar ] || ! command -v java >/dev/null; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq libjna-java default-jre-headless >/dev/null
fi
KOTLIN_VERSION=2.4.20
if [ ! -x "$tools/kotlinc/bin/kotlinc" ]; then
  (cd "$tools" && npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null \
    && rm -rf kotlinc package && tar xzf "kotlin-compiler-$KOTLIN_VERSION.tgz" && mv package kotlinc \
    && rm -f "kotlin-compiler-$KOTLIN_VERSION.tgz")
fi

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# One invocation for every test target and the benchmarks (quick mode, so
# they cannot rot): one feature resolution, so nothing is compiled twice.
step "rust tests and benchmarks"
LINLI_BENCH_QUICK=1 cargo test --workspace --locked --all-targets

# The library, the server and the generator in one build, for the same reason.
step "bindings: build and generate"
cargo build --locked -p linli-ffi -p linli-server --features linli-ffi/bindgen
lib=$out/liblinli_ffi.so
gen=bindings/generated
rm -rf "$gen" && mkdir -p "$gen"
for lang in python kotlin swift; do
  "$out/uniffi-bindgen" generate --no-format --library "$lib" --language "$lang" --out-dir "$gen/$lang" >/dev/null
done
cp "$lib" "$gen/python/"

step "kotlin on the JVM"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$tools/kotlinc/bin/kotlinc" -nowarn "$gen/kotlin/org/linli/core/linli_ffi.kt" bindings/tests/kotlin/Story.kt \
  -cp /usr/share/java/jna.jar -d "$scratch/story.jar"
java -Djna.library.path="$out" \
  -cp "$scratch/story.jar:/usr/share/java/jna.jar:$tools/kotlinc/lib/kotlin-stdlib.jar" \
  StoryKt "$out/linli-server" "$scratch/kotlin"

step "python"
LINLI_PY_BINDINGS="$gen/python" LINLI_SERVER_BIN="$out/linli-server" \
  python3 -m pytest -q bindings/tests/python

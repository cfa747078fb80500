#!/usr/bin/env bash
# Build LinliCoreFFI.xcframework (device + simulator) and the Swift bindings.
# Run on a Mac with Xcode and the Rust targets:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
#   ios/build-xcframework.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=ios/build
rm -rf "$out" && mkdir -p "$out/headers"

for target in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
  cargo build --release -p linli-ffi --target "$target"
done

# The static library bundles its own SQLite. Hide every symbol that is not
# part of the uniffi API (the _sqlite3_* ones above all), so it can never
# clash with the system SQLite an app also links: keep only uniffi's
# exported functions, and make everything else local.
hide() {
  local lib=$1 dir
  dir=$(mktemp -d)
  nm -gU "$lib" | awk '{print $3}' | grep -E '^_(uniffi_|ffi_linli_ffi_)' > "$dir/keep.txt"
  ld -r -arch "$2" -exported_symbols_list "$dir/keep.txt" -o "$dir/linked.o" -all_load "$lib"
  rm -f "$lib" && ar rcs "$lib" "$dir/linked.o"
}
hide target/aarch64-apple-ios/release/liblinli_ffi.a arm64
hide target/aarch64-apple-ios-sim/release/liblinli_ffi.a arm64
hide target/x86_64-apple-ios/release/liblinli_ffi.a x86_64

lipo -create target/aarch64-apple-ios-sim/release/liblinli_ffi.a target/x86_64-apple-ios/release/liblinli_ffi.a \
  -output "$out/liblinli_ffi_sim.a"

cargo run -p linli-ffi --features bindgen --bin uniffi-bindgen -- generate \
  --library target/aarch64-apple-ios/release/liblinli_ffi.a --language swift --out-dir "$out/swift"
cp "$out"/swift/*.h "$out/headers/"
cp "$out/swift/LinliCoreFFI.modulemap" "$out/headers/module.modulemap"
cp "$out/swift/LinliCore.swift" ios/Sources/LinliCore/

xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/liblinli_ffi.a -headers "$out/headers" \
  -library "$out/liblinli_ffi_sim.a" -headers "$out/headers" \
  -output "$out/LinliCoreFFI.xcframework"
echo "built $out/LinliCoreFFI.xcframework and ios/Sources/LinliCore/LinliCore.swift"

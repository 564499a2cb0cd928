#!/usr/bin/env bash
# Builds the browser bundle into web/pkg (wasm-bindgen must match Cargo.lock's wasm-bindgen).
# Serve it with: python3 -m http.server -d web 8000   (then open http://localhost:8000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --lib --release --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir web/pkg target/wasm32-unknown-unknown/release/swav_wgpu.wasm
raw=$(wc -c < web/pkg/swav_wgpu_bg.wasm)
gz=$(gzip -9 -c web/pkg/swav_wgpu_bg.wasm | wc -c)
echo "web/pkg/swav_wgpu_bg.wasm: $raw bytes, $gz bytes gzipped"

#!/usr/bin/env bash
# swav-wgpu against PyTorch on one machine's GPU, in one call, within ~10 minutes.
#
# For a Linux x86-64 machine with an NVIDIA GPU and PyTorch with CUDA, but no cargo, no
# internet and maybe no Vulkan loader: it runs a release binary built elsewhere
# (`cargo build --release`), unpacking the `libvulkan1` .debs it is given when the loader is
# missing, then `swav-wgpu bench`, then the same training steps in the PyTorch twin on CUDA
# fp32 (TF32 off, and TF32 on beside it), and prints the ratios.
#
#   benches/gpu/run.sh [--quick] [--bin PATH] [--debs DIR] [--device cuda|cpu] [--reps N]
#
#   --quick   small problems and the first step configuration only (runs on lavapipe and
#             a CPU-only torch: the end-to-end check of this script)
#   --bin     the swav-wgpu binary (default: target/release/swav-wgpu)
#   --debs    a folder of .deb files (libvulkan1, ...) to unpack with dpkg -x when
#             `ldconfig -p` shows no libvulkan (default: .gl)
#   --device  the twin's torch device (default: cuda when torch sees one, else cpu)
# The NVIDIA Vulkan driver may need VK_DRIVER_FILES pointed at its nvidia_icd.json; the
# script tries the usual places when no Vulkan GPU adapter is listed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
quick="" bin="$repo/target/release/swav-wgpu" debs="$repo/.gl" device="" reps=5
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; reps=2 ;;
    --bin) bin="$2"; shift ;;
    --debs) debs="$2"; shift ;;
    --device) device="$2"; shift ;;
    --reps) reps="$2"; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$bin" ] || { echo "run.sh: no swav-wgpu binary at $bin (build with cargo build --release, or pass --bin)" >&2; exit 2; }
out="${OUT:-$(mktemp -d)}"
mkdir -p "$out"

# The Vulkan loader: unpack the given .debs when the system has none.
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then
  if ls "$debs"/*.deb >/dev/null 2>&1; then
    for f in "$debs"/*.deb; do dpkg -x "$f" /; done
    ldconfig
  else
    echo "run.sh: no libvulkan.so.1 and no .debs in $debs to unpack" >&2
    exit 2
  fi
fi
# A GPU adapter must be visible; try the NVIDIA ICD's usual places before giving up.
if [ -z "$quick" ] && ! "$bin" devices 2>&1 | grep -q "DiscreteGpu\|IntegratedGpu"; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then
      export VK_DRIVER_FILES="$icd"
      break
    fi
  done
fi
"$bin" devices 2>&1 | tee "$out/devices.txt"

echo "== swav-wgpu bench"
bench_args=(bench --reps "$reps")
[ -n "$quick" ] && bench_args+=(--quick)
"$bin" "${bench_args[@]}" 2>&1 | tee "$out/bench.txt"

echo "== PyTorch twin, the same steps"
if ! python3 -c "import torch" 2>/dev/null; then
  echo "run.sh: python3 cannot import torch: no twin baseline" >&2
  exit 1
fi
[ -n "$device" ] || device="$(python3 -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')"
configs=(r18x0.25-b64 r18x1-b256 r50-b32)
[ -n "$quick" ] && configs=(r18x0.25-b64)
: >"$out/twin.txt"
for c in "${configs[@]}"; do
  for tf32 in "" --tf32; do
    [ "$device" = cpu ] && [ -n "$tf32" ] && continue  # TF32 is a CUDA mode
    line="$(python3 "$repo/tests/torch/swav_torch.py" bench --config "$here/$c.toml" --device "$device" --steps "$reps" $tf32)"
    echo "$c $line" | tee -a "$out/twin.txt"
  done
done

echo "== ratios (swav-wgpu img/s / twin img/s, fp32 with TF32 off)"
python3 - "$out/bench.txt" "$out/twin.txt" <<'EOF'
import json, sys
ours = {}
for line in open(sys.argv[1]):
    if line.startswith("json: "):
        r = json.loads(line[6:])
        if r["kind"] == "step":
            ours[r["config"]] = r["img_per_s"]
        if r["kind"] == "adapter":
            print(f"swav-wgpu adapter: {r['name']} ({r['backend']}, {r['type']}, {r['driver']})")
for line in open(sys.argv[2]):
    name, js = line.split(" ", 1)
    t = json.loads(js)
    if name in ours:
        mode = "TF32 on " if t["tf32"] else "fp32    "
        print(f"{name:<14} {mode} swav-wgpu {ours[name]:9.1f} img/s  twin ({t['device']}) {t['img_per_s']:9.1f} img/s  ratio {ours[name] / t['img_per_s']:.3f}")
EOF
echo "run.sh: outputs in $out"

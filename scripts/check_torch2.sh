#!/usr/bin/env bash
# Compiles every source of the release build against libtorch 2.11 with CUDA (the headers of
# PyTorch's own wheel, the version on the GPU machine), NCCL data parallelism included, with
# -fsyntax-only and the project's warnings as errors. This machine has Debian's libtorch 1.13
# and no GPU; the check keeps the code to the API both share without one.
#   scripts/check_torch2.sh            (after a release build: needs its compile_commands.json)
# Downloads (pinned, checksums checked): torch 2.11.0 (530 MB), nvidia-nccl-cu13 and the CUDA
# 13 runtime headers; only headers are unpacked, under build/torch2.
set -euo pipefail
cd "$(dirname "$0")/.."
commands=build/release/compile_commands.json
[ -f "$commands" ] || { echo "check_torch2: $commands missing: build first (scripts/test.sh or cmake --build build/release)" >&2; exit 2; }
dir=build/torch2
mkdir -p "$dir/wheels"
torch_wheel=torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl
declare -A sums=(
  [$torch_wheel]=7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a
  [nvidia_nccl_cu13-2.32.3-py3-none-manylinux_2_27_x86_64.whl]=1459723080ac889d73a26edfa3e04383a7928ab31ac8f0ec43b3ea9548b04ff3
  [nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl]=7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
  [nvidia_cuda_crt-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl]=2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
)
if [ ! -f "$dir/wheels/$torch_wheel" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
    -d "$dir/wheels" torch==2.11.0
fi
for pkg in nvidia-nccl-cu13==2.32.3 nvidia-cuda-runtime==13.0.96 nvidia-cuda-crt==13.0.88; do
  name=$(echo "${pkg%%==*}" | tr - _)
  ls "$dir/wheels/$name"-*.whl >/dev/null 2>&1 || python3 -m pip download -q --no-deps --only-binary=:all: -d "$dir/wheels" "$pkg"
done
for wheel in "${!sums[@]}"; do
  echo "${sums[$wheel]}  $dir/wheels/$wheel" | sha256sum --check --quiet
done
python3 - "$dir" "$commands" <<'EOF'
import json, os, shlex, subprocess, sys, zipfile
from concurrent.futures import ThreadPoolExecutor

root, commands = sys.argv[1], sys.argv[2]
headers = os.path.join(root, "headers")
if not os.path.isdir(os.path.join(headers, "torch", "include")):
    for wheel in os.listdir(os.path.join(root, "wheels")):
        with zipfile.ZipFile(os.path.join(root, "wheels", wheel)) as z:
            z.extractall(headers, [n for n in z.namelist() if "/include/" in n and not n.endswith("/")])
torch_inc = os.path.abspath(os.path.join(headers, "torch", "include"))
cuda_inc = os.path.abspath(os.path.join(headers, "nvidia", "cu13", "include"))
nccl_inc = os.path.abspath(os.path.join(headers, "nvidia", "nccl", "include"))
# torch/version.h in 1.x, torch/headeronly/version.h in recent 2.x
version = "".join(open(p).read() for p in [os.path.join(torch_inc, "torch", "headeronly", "version.h"),
                                           os.path.join(torch_inc, "torch", "csrc", "api", "include", "torch", "version.h")]
                  if os.path.exists(p))

def retarget(entry):
    """The build's compile command, with libtorch 2.11's headers instead of Debian's 1.13."""
    args, out, i = shlex.split(entry["command"]), [], 0
    while i < len(args):
        a = args[i]
        if a in ("-include", "-o", "-MF", "-MT"):  # precompiled headers (built from 1.13), outputs
            i += 2
            continue
        if a in ("-MD", "-c", "-Winvalid-pch") or a.endswith("ccache") or a == entry["file"]:
            i += 1
            continue
        if a == "-isystem" and args[i + 1].startswith("/usr/include/torch"):
            i += 2
            continue
        out.append(a)
        i += 1
    # Before /usr/include, which holds Debian's ATen and c10.
    out[1:1] = ["-isystem", torch_inc, "-isystem", os.path.join(torch_inc, "torch", "csrc", "api", "include")]
    if entry["file"].endswith("src/train/distributed.cc"):
        out += ["-DFLIPLESS_WITH_NCCL", "-DUSE_C10D_NCCL", "-isystem", nccl_inc, "-isystem", cuda_inc]
    return out + ["-fsyntax-only", entry["file"]]

entries = [e for e in json.load(open(commands)) if not e["file"].endswith(".hxx.cxx")]
def check(entry):
    r = subprocess.run(retarget(entry), cwd=entry["directory"], capture_output=True, text=True)
    return entry["file"], r.returncode, r.stderr

failed = 0
with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
    for path, code, err in pool.map(check, entries):
        if code != 0:
            failed += 1
            print(f"FAIL {os.path.relpath(path)}\n{err}", flush=True)
major = version.split("define TORCH_VERSION_MAJOR ")[1].split()[0]
minor = version.split("define TORCH_VERSION_MINOR ")[1].split()[0]
print(f"{len(entries) - failed} of {len(entries)} sources compile against libtorch {major}.{minor} (CUDA build headers, NCCL on)")
sys.exit(1 if failed else 0)
EOF

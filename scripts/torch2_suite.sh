#!/usr/bin/env bash
# Builds flipless against PyTorch 2.11's CUDA libtorch (the version on the GPU machine) and runs
# the whole test suite with it on the CPU, no GPU needed: the GPU build's configuration
# (scripts/gpu_check.sh: .gpu/debs unpacked beside libtorch, cache and server off, NCCL on), so
# what would break that build or its tests shows here first, without spending device time. The
# CUDA wheel runs on a machine without a GPU once the CUDA 13 libraries it names are found: the
# CUDA toolkit's (/usr/local/cuda on the development machines) and three wheels from PyPI
# (cuSPARSELt, NVSHMEM, cuFile). Golden-run comparisons skip there (they hold libtorch 1.13's
# bits), and the Gpu.* tests skip.
#   scripts/gpu_prepare.sh && scripts/torch2_suite.sh [CTEST ARGS...]   (about 25 min on 2 cores)
# Wheels (pinned, checksums checked) go to build/torch2/wheels and are unpacked outside the
# source tree, which CMake's export refuses include paths inside: $FLIPLESS_TORCH2_DIR, default
# ~/.cache/flipless/torch-2.11. Build folder: $BUILD, default build/torch2-suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .gpu/debs ] || { echo "torch2_suite: .gpu/debs missing: run scripts/gpu_prepare.sh first" >&2; exit 2; }
cuda=${CUDA_HOME:-/usr/local/cuda}
[ -x "$cuda/bin/nvcc" ] || { echo "torch2_suite: no nvcc under $cuda (set CUDA_HOME): PyTorch's CMake files need the CUDA 13 toolkit" >&2; exit 2; }
wheels=build/torch2/wheels
site=${FLIPLESS_TORCH2_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flipless/torch-2.11}
build=${BUILD:-build/torch2-suite}
mkdir -p "$wheels" "$site"

declare -A sums=(
  [torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl]=7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a
  [nvidia_nccl_cu13-2.32.3-py3-none-manylinux_2_27_x86_64.whl]=1459723080ac889d73a26edfa3e04383a7928ab31ac8f0ec43b3ea9548b04ff3
  [nvidia_cusparselt_cu13-0.8.0-py3-none-manylinux2014_x86_64.whl]=25e30a8a7323935d4ad0340b95a0b69926eee755767e8e0b1cf8dd85b197d3fd
  [nvidia_nvshmem_cu13-3.4.5-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl]=290f0a2ee94c9f3687a02502f3b9299a9f9fe826e6d0287ee18482e78d495b80
  [nvidia_cufile-1.15.1.6-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl]=08a3ecefae5a01c7f5117351c64f17c7c62efa5fffdbe24fc7d298da19cd0b44
)
for pkg in torch==2.11.0 nvidia-nccl-cu13==2.32.3 nvidia-cusparselt-cu13==0.8.0 nvidia-nvshmem-cu13==3.4.5 nvidia-cufile==1.15.1.6; do
  name=$(echo "${pkg%%==*}" | tr - _)
  ls "$wheels/$name"-*.whl >/dev/null 2>&1 ||
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 -d "$wheels" "$pkg"
done
for wheel in "${!sums[@]}"; do
  echo "${sums[$wheel]}  $wheels/$wheel" | sha256sum --check --quiet
done
if [ ! -f "$site/.unpacked" ]; then
  for wheel in "${!sums[@]}"; do unzip -q -o "$wheels/$wheel" -d "$site"; done
  touch "$site/.unpacked"
fi

# As scripts/gpu_check.sh does on the GPU machine.
. scripts/gpu_sysroot.sh
export PATH="$cuda/bin:$PATH"
export LD_LIBRARY_PATH="$site/torch/lib:$site/nvidia/cu13/lib:$site/nvidia/cusparselt/lib:$site/nvidia/nvshmem/lib:$site/nvidia/nccl/lib:$cuda/lib64:$LD_LIBRARY_PATH"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$site/torch/share/cmake;$sys/usr" \
  -DCMAKE_CUDA_STANDARD=17 -DTORCH_CUDA_ARCH_LIST=9.0 \
  -DFLIPLESS_WITH_CACHE=OFF -DFLIPLESS_WITH_NCCL=ON -DFLIPLESS_BUILD_BENCH=OFF >/dev/null
cmake --build "$build"
"$build/flipless" devices | sed -n 1,3p
ctest --test-dir "$build" -j "$(nproc)" --output-on-failure "$@"

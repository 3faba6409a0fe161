#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU and PyTorch (whose libtorch flipless links)
# after scripts/gpu_prepare.sh has written .gpu/ here. In one go, within BUDGET_S seconds:
#   1. builds flipless against PyTorch's CUDA libtorch (cache and server off: libtorch, NCCL and
#      the small libraries from .gpu/debs only);
#   2. runs the GPU tests (Gpu.*, MixedPrecision.*, Device.*, Autocast.*: the Gpu.* ones run
#      instead of skipping);
#   3. runs the whole test suite against that libtorch (at most 300 s; $OUT/ctest.log; 17 s on
#      16 cores in the second GPU session);
#   4. times fine-tuning MiniLM on SST-2 on the GPU in fp32, bf16 and fp16 (8,192 examples, one
#      epoch each), and a two-process data-parallel run (Gloo over CUDA tensors; NCCL needs a
#      GPU per process);
#   5. fine-tunes MiniLM on all of SST-2 with the paper's BERT-base recipe (SPEC.md: lr 1e-5,
#      batch 16, 5 epochs) in bf16, as far as the budget allows, and reports dev accuracy.
# Each step is bounded so that a hang costs its own step only, and the steps come in the order
# of what a short lease should bring back first.
# Everything is logged to $OUT/gpu_check.log (the device tool brings $OUT back) or
# build/gpu-out/. Usage: bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${BUDGET_S:-560}
out=${OUT:-build/gpu-out}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
left() { echo $((budget - SECONDS)); }
step() { echo; echo "== [$SECONDS s] $*"; }

[ -d .gpu/debs ] || { echo "gpu_check: .gpu/ missing: run scripts/gpu_prepare.sh where the network is, and carry .gpu"; exit 2; }
step "machine"
nvidia-smi -L || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'
command -v c++ g++ ninja cmake || true

step "unpack the libraries beside libtorch"
. scripts/gpu_sysroot.sh
torch_cmake=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')

step "configure and build (Release, FLIPLESS_WITH_CACHE=OFF, FLIPLESS_WITH_NCCL=ON)"
# CUDA 17: PyTorch's CMake files try_run a CUDA program with the C++ standard of the project
# (20), which CMake 3.25 does not know for nvcc ("CUDA20 ... does not support this"); flipless
# compiles no CUDA code itself. The architecture list comes from the GPU, not from a try_run.
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)
gen=Ninja; command -v ninja >/dev/null || gen="Unix Makefiles"
cmake -S . -B build/gpu -G "$gen" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_cmake;$sys/usr" \
  -DCMAKE_CUDA_STANDARD=17 ${arch:+-DTORCH_CUDA_ARCH_LIST=$arch} \
  -DFLIPLESS_WITH_CACHE=OFF -DFLIPLESS_WITH_NCCL=ON -DFLIPLESS_BUILD_BENCH=OFF || exit 1
cmake --build build/gpu -j "$(nproc)" -- -k 0 || exit 1
flipless=build/gpu/flipless
$flipless devices

keep_logs() { for d in build/gpu-runs/*/; do [ -f "$d/train_log.json" ] && cp "$d/train_log.json" "$out/$(basename "$d").train_log.json"; done; }

step "the GPU tests"
timeout 150 ctest --test-dir build/gpu -R '^(Gpu|MixedPrecision|Device|Autocast)\.' --output-on-failure -V > "$out/gpu_tests.log" 2>&1
echo "ctest exit $?"
grep -E 'Test +#|tests passed|tests failed|FAILED|Exception|aborted|rror' "$out/gpu_tests.log" | tail -30

# The whole suite against libtorch 2.x (the only place it runs there), within what is left.
suite=$(( $(left) - 60 )); [ "$suite" -gt 300 ] && suite=300
if [ "$suite" -gt 30 ]; then
  step "the whole test suite (${suite} s at most)"
  OMP_NUM_THREADS=2 timeout "$suite" ctest --test-dir build/gpu -j 8 --timeout 120 --output-on-failure > "$out/ctest.log" 2>&1
  echo "ctest exit $?"; grep -E "tests passed|tests failed|\*\*\*|Failed|Timeout|Not Run|Exception|aborted" "$out/ctest.log" | tail -40
else
  step "skipped the whole test suite: $(left) s of the budget left"
fi

step "fine-tuning throughput on the GPU: MiniLM, SST-2, 8,192 examples, batch 32, one epoch"
for precision in fp32 bf16 fp16; do
  timeout 120 $flipless train --model .gpu/minilm-l6 --task sst2 --max-train 8192 --epochs 1 --lr 3e-5 --batch-size 32 \
    --device cuda --precision "$precision" --out "build/gpu-runs/speed-$precision" 2>&1 | grep -E "^data|epoch 1:|accuracy|rror"
done
keep_logs
step "two processes, one GPU (gloo over CUDA tensors), 8,192 examples"
port=$((20000 + RANDOM % 20000))
ranks=()
for rank in 0 1; do
  timeout 120 $flipless train --model .gpu/minilm-l6 --task sst2 --max-train 8192 --epochs 1 --lr 3e-5 --batch-size 16 --device cuda \
    --world-size 2 --rank $rank --master-port $port --backend gloo --out build/gpu-runs/ddp 2>&1 | grep -E "joined|epoch 1:|accuracy|rror" &
  ranks+=($!)
done
wait "${ranks[@]}"  # not a bare wait: bash 5.1+ waits for the tee of the log's process substitution too, forever
keep_logs

if [ "$(left)" -gt 150 ]; then
  step "SST-2, all 60k training sentences, paper recipe (lr 1e-5, batch 16, 5 epochs), bf16"
  timeout $(( $(left) - 15 )) $flipless train --model .gpu/minilm-l6 --task sst2 --epochs 5 --lr 1e-5 --batch-size 16 \
    --device cuda --precision bf16 --out build/gpu-runs/sst2-paper-bf16 2>&1 | grep -E "^data|epoch [0-9]:|accuracy|rror"
  keep_logs
else
  step "skipped the full SST-2 run: $(left) s of the budget left"
fi
step "done"

#!/usr/bin/env bash
# Prepares the GPU check (scripts/gpu_check.sh) here, where Debian's packages and PyPI are
# reachable, for a GPU machine that has PyTorch (and so a CUDA libtorch), CMake, ninja and a
# compiler but no network and none of flipless's other C++ libraries. Writes .gpu/ (ignored by
# git, about 50 MB: under the device tool's 64 MiB carry limit):
#   .gpu/debs/        the Debian packages the build needs beside libtorch (unpacked there); gloo's
#                     headers among them: PyTorch's wheels carry its library, not its headers
#   .gpu/minilm-l6/   all-MiniLM-L6-v2 with its weights in float16 (the loader widens them)
# Then: the device tool's run with carry [".gpu"] and the command `bash scripts/gpu_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch_models.sh minilm-l6 >/dev/null
mkdir -p .gpu/debs .gpu/minilm-l6
(cd .gpu/debs && apt-get download -q libfmt-dev libfmt9 libyaml-cpp-dev libyaml-cpp0.7 libcli11-dev nlohmann-json3-dev \
  libutf8proc-dev libutf8proc2 libgloo-dev libsimdjson-dev libsimdjson14 libxxhash-dev libxxhash0 libfasttext-dev libfasttext0 libgtest-dev zlib1g-dev pkgconf pkgconf-bin libpkgconf3 >/dev/null)
src="${FLIPLESS_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flipless/models}/minilm-l6"
for f in config.json vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json; do cp "$src/$f" .gpu/minilm-l6/; done
python3 - "$src/model.safetensors" .gpu/minilm-l6/model.safetensors <<'PY'
# float32 -> float16, tensor by tensor, with the standard library alone (no numpy here).
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
out_header, chunks, offset = {}, [], 0
for name, info in header.items():
    if name == "__metadata__":
        out_header[name] = info
        continue
    begin, end = info["data_offsets"]
    raw = data[begin:end]
    if info["dtype"] == "F32":
        count = len(raw) // 4
        raw = struct.pack(f"<{count}e", *struct.unpack(f"<{count}f", raw))
        info = dict(info, dtype="F16")
    out_header[name] = dict(info, data_offsets=[offset, offset + len(raw)])
    chunks.append(raw)
    offset += len(raw)
blob = json.dumps(out_header).encode()
blob += b" " * (-len(blob) % 8)
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))
PY
du -sh .gpu

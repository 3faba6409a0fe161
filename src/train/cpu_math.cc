#include "flipless/train/cpu_math.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <fmt/format.h>

namespace flipless::train {

namespace {

constexpr const char* kOptOut = "FLIPLESS_NO_BLAS_REEXEC";
constexpr const char* kDetected = "FLIPLESS_BLAS_DETECTED";
constexpr const char* kTestHook = "FLIPLESS_TEST_BLAS_CORETYPE_AS_DETECTED";
constexpr const char* kSpinSet = "FLIPLESS_GOMP_SPINCOUNT_SET";

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
  return out;
}

// OpenBLAS's C API, looked up at run time: libtorch may carry another BLAS (MKL in PyTorch's
// own builds), and then these are absent.
template <typename F>
F openblas_symbol(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}
using GetString = char* (*)();
using GetInt = int (*)();
using SetInt = void (*)(int);
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

std::string loaded_openblas_core() {
  const auto corename = openblas_symbol<GetString>("openblas_get_corename");
  const char* core = corename ? corename() : nullptr;
  return core ? std::string(core) : std::string();
}

}  // namespace

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, a, b, c, d);
  const bool fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  if (!osxsave || !avx) return f;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_saved = (xcr0_lo & 0x6u) == 0x6u;                 // SSE and AVX state
  const bool zmm_saved = ymm_saved && (xcr0_lo & 0xE0u) == 0xE0u;  // opmask, ZMM0-15 upper halves, ZMM16-31
  const bool tiles_saved = (xcr0_lo & 0x60000u) == 0x60000u;       // AMX TILECFG and TILEDATA
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned ebx7 = b, edx7 = d;
  const bool avx2 = (ebx7 >> 5) & 1;
  const bool avx512 =
      ((ebx7 >> 16) & 1) && ((ebx7 >> 17) & 1) && ((ebx7 >> 28) & 1) && ((ebx7 >> 30) & 1) && ((ebx7 >> 31) & 1);
  const bool amx = ((edx7 >> 22) & 1) && ((edx7 >> 24) & 1);
  __cpuid_count(7, 1, a, b, c, d);
  const bool bf16 = (a >> 5) & 1;
  f.avx2_fma = ymm_saved && avx2 && fma;
  f.avx512 = zmm_saved && f.avx2_fma && avx512;
  f.avx512_bf16 = f.avx512 && bf16;
  f.amx_bf16 = tiles_saved && amx;
#endif
  return f;
}

std::string cpu_model_name() {
  std::string name;
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0x80000000u, nullptr) < 0x80000004u) return name;
  for (unsigned leaf = 0x80000002u; leaf <= 0x80000004u; ++leaf) {
    __cpuid(leaf, a, b, c, d);
    for (unsigned r : {a, b, c, d}) {
      for (int i = 0; i < 4; ++i) name.push_back(static_cast<char>((r >> (8 * i)) & 0xFF));
    }
  }
  name.resize(std::strlen(name.c_str()));
  const auto first = name.find_first_not_of(' ');
  name = first == std::string::npos ? std::string() : name.substr(first, name.find_last_not_of(' ') - first + 1);
#endif
  return name;
}

int openblas_core_level(std::string_view core) {
  static constexpr std::array<std::pair<std::string_view, int>, 25> kLevels{{
      {"katmai", 1},  {"coppermine", 1},  {"northwood", 1},     {"prescott", 1},   {"banias", 1},
      {"atom", 1},    {"core2", 1},       {"penryn", 1},        {"dunnington", 1}, {"nehalem", 1},
      {"athlon", 1},  {"opteron", 1},     {"opteron(sse3)", 1}, {"barcelona", 1},  {"nano", 1},
      {"bobcat", 1},  {"sandybridge", 2}, {"bulldozer", 2},     {"piledriver", 2}, {"steamroller", 2},
      {"haswell", 3}, {"excavator", 3},   {"zen", 3},           {"skylakex", 4},   {"cooperlake", 5},
  }};
  const std::string name = lower(core);
  if (name == "sapphirerapids") return 5;
  for (const auto& [known, level] : kLevels) {
    if (name == known) return level;
  }
  return 0;
}

std::optional<std::string> best_openblas_core(const CpuFeatures& cpu) {
  if (cpu.avx512_bf16) return "Cooperlake";
  if (cpu.avx512) return "SkylakeX";
  if (cpu.avx2_fma) return "Haswell";
  return std::nullopt;
}

BlasKernelChoice choose_blas_kernel(std::string_view loaded_core, std::optional<std::string_view> coretype_env,
                                    bool opted_out, bool reexecuted, const CpuFeatures& cpu) {
  BlasKernelChoice c;
  if (loaded_core.empty()) {
    c.reason = "no OpenBLAS in this process";
    return c;
  }
  if (reexecuted) {
    c.reason = "already re-executed once";
    return c;
  }
  if (coretype_env) {
    c.reason = fmt::format("OPENBLAS_CORETYPE={} is set; respected", *coretype_env);
    return c;
  }
  if (opted_out) {
    c.reason = fmt::format("{} is set", kOptOut);
    return c;
  }
  const auto best = best_openblas_core(cpu);
  const int have = openblas_core_level(loaded_core);
  if (!best) {
    c.reason = "this CPU has no AVX2; OpenBLAS's own choice stands";
  } else if (have == 0) {
    c.reason = fmt::format("OpenBLAS chose '{}', a core this table does not know; left as it is", loaded_core);
  } else if (have >= openblas_core_level(*best)) {
    c.reason = fmt::format("OpenBLAS chose {}, as good as this CPU allows", loaded_core);
  } else {
    c.reexec = true;
    c.core = *best;
    c.reason = fmt::format("OpenBLAS chose {} (generic for this CPU); re-executing with OPENBLAS_CORETYPE={}",
                           loaded_core, *best);
  }
  return c;
}

OpenMpSpinChoice choose_openmp_spin(bool have_openblas, unsigned cores, bool spincount_env, bool wait_policy_env, bool opted_out,
                                    bool reexecuted) {
  OpenMpSpinChoice c;
  if (!have_openblas) {
    c.reason = "no OpenBLAS pool to compete with; libgomp's default";
  } else if (cores < 2) {
    c.reason = "one core; libgomp's default";
  } else if (spincount_env || wait_policy_env) {
    c.reason = "set in the environment; respected";
  } else if (opted_out) {
    c.reason = fmt::format("{} is set; libgomp's default", kOptOut);
  } else if (reexecuted) {
    c.reason = "already re-executed once; libgomp's default";
  } else {
    c.set = true;
    c.value = kOpenMpSpinCount;
    c.reason = fmt::format("re-executing with GOMP_SPINCOUNT={} (OpenMP's spinning threads slow OpenBLAS's)", c.value);
  }
  return c;
}

bool computes_with_torch(std::string_view subcommand) {
  for (const std::string_view s : {"train", "predict", "serve", "experiment", "demo", "cache", "devices"}) {
    if (subcommand == s) return true;
  }
  return false;
}

void select_blas_kernel_at_startup(char** argv, bool computes) {
  if (!computes || argv == nullptr || argv[0] == nullptr) return;
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  const bool test_hook = env_set(kTestHook);
  std::optional<std::string_view> coretype;
  if (env != nullptr && *env != '\0' && !test_hook) coretype = env;
  const std::string loaded = loaded_openblas_core();
  const bool reexecuted = std::getenv(kDetected) != nullptr || std::getenv(kSpinSet) != nullptr;
  const auto choice = choose_blas_kernel(loaded, coretype, env_set(kOptOut), reexecuted, cpu_features());
  const auto spin = choose_openmp_spin(!loaded.empty(), std::thread::hardware_concurrency(), std::getenv("GOMP_SPINCOUNT") != nullptr,
                                       std::getenv("OMP_WAIT_POLICY") != nullptr, env_set(kOptOut), reexecuted);
  if (!choice.reexec && !spin.set) return;
  // The child must not loop, and must be able to say what it was given and why.
  if (choice.reexec && (setenv(kDetected, loaded.c_str(), 1) != 0 || setenv("OPENBLAS_CORETYPE", choice.core.c_str(), 1) != 0)) return;
  if (spin.set && (setenv(kSpinSet, "1", 1) != 0 || setenv("GOMP_SPINCOUNT", spin.value.c_str(), 1) != 0)) return;
  unsetenv(kTestHook);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc, say): go on as loaded, and say so in devices.
  if (choice.reexec) {
    unsetenv("OPENBLAS_CORETYPE");
    setenv(kDetected, fmt::format("{} (re-execution failed)", loaded).c_str(), 1);
  }
  if (spin.set) {
    unsetenv("GOMP_SPINCOUNT");
    setenv(kSpinSet, "re-execution failed", 1);
  }
}

BlasInfo blas_info() {
  BlasInfo info;
  info.core = loaded_openblas_core();
  info.openblas = !info.core.empty();
  if (!info.openblas) return info;
  if (const auto config = openblas_symbol<GetString>("openblas_get_config"); config && config()) info.config = config();
  if (const auto threads = openblas_symbol<GetInt>("openblas_get_num_threads")) info.threads = threads();
  const char* detected = std::getenv(kDetected);
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  if (detected != nullptr) {
    info.chosen_by = fmt::format("chosen by flipless at start-up (OpenBLAS had detected {} on this CPU)", detected);
    if (env != nullptr && lower(env) != lower(info.core))
      info.chosen_by += fmt::format("; asked for {}, which this OpenBLAS does not have", env);
  } else if (env != nullptr && *env != '\0') {
    info.chosen_by = fmt::format("set by OPENBLAS_CORETYPE={} in the environment", env);
  } else {
    info.chosen_by = "detected by OpenBLAS";
  }
  const char* set = std::getenv(kSpinSet);
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  if (set != nullptr && std::strcmp(set, "1") == 0 && spin != nullptr) {
    info.openmp_spin = fmt::format("GOMP_SPINCOUNT={}, set by flipless at start-up (libgomp's default spin slows OpenBLAS's threads)", spin);
  } else if (set != nullptr) {
    info.openmp_spin = fmt::format("libgomp's default spin ({}); set GOMP_SPINCOUNT={} before starting", set, kOpenMpSpinCount);
  } else if (spin != nullptr || policy != nullptr) {
    info.openmp_spin = fmt::format("{}{}{}, set in the environment", spin ? fmt::format("GOMP_SPINCOUNT={}", spin) : "",
                                   spin && policy ? " " : "", policy ? fmt::format("OMP_WAIT_POLICY={}", policy) : "");
  } else {
    info.openmp_spin = "libgomp's default spin";
  }
  return info;
}

void set_blas_threads(int n) {
  if (const auto set = openblas_symbol<SetInt>("openblas_set_num_threads")) set(std::max(1, n));
}

std::optional<double> openblas_sgemm_gflops(int n, int repeats) {
  const auto sgemm = openblas_symbol<Sgemm>("sgemm_");
  const auto get_threads = openblas_symbol<GetInt>("openblas_get_num_threads");
  if (!sgemm || !get_threads || loaded_openblas_core().empty()) return std::nullopt;
  const int threads = get_threads();
  set_blas_threads(1);
  const auto size = static_cast<std::size_t>(n) * static_cast<std::size_t>(n);
  std::vector<float> a(size), b(size), c(size);
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (std::size_t i = 0; i < size; ++i) {
    a[i] = u(rng);
    b[i] = u(rng);
  }
  const float one = 1.0f, zero = 0.0f;
  double best = 1e300;
  for (int r = 0; r <= repeats; ++r) {  // the first run warms up and is not counted
    const auto start = std::chrono::steady_clock::now();
    sgemm("N", "N", &n, &n, &n, &one, a.data(), &n, b.data(), &n, &zero, c.data(), &n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r > 0) best = std::min(best, s);
  }
  set_blas_threads(threads);
  return 2.0 * n * n * static_cast<double>(n) / best / 1e9;
}

}  // namespace flipless::train

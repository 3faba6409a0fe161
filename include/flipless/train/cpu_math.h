#pragma once
// The CPU's matrix-product path: what the CPU can run, which BLAS libtorch's float32 products
// go to, which kernels that BLAS chose, and the start-up step that corrects OpenBLAS when it
// falls back to generic kernels.
//
// Why: Debian's OpenBLAS (0.3.21, built DYNAMIC_ARCH) picks its kernels from CPUID when it
// loads. On a CPU newer than it knows it falls back to "Prescott" (SSE3) kernels, 4-10x slower
// than the CPU's own (BENCHMARKS.md, "The CPU math path"). It honours OPENBLAS_CORETYPE, but
// reads it only when the library loads, before main; so `flipless` re-executes itself once
// with the variable set (select_blas_kernel_at_startup). An OPENBLAS_CORETYPE set by the user
// is always respected, FLIPLESS_NO_BLAS_REEXEC=1 turns the step off, and the re-executed
// process carries FLIPLESS_BLAS_DETECTED=<what OpenBLAS had picked> so that it neither loops
// nor hides what happened (`flipless devices` shows it).
//
// The same re-execution sets GOMP_SPINCOUNT when the process has several cores and the user set
// neither it nor OMP_WAIT_POLICY (choose_openmp_spin): libtorch's OpenMP threads spin after
// every parallel region (libgomp's default is 300,000 spins), and on a machine with as many
// threads as cores they take the cores that OpenBLAS's own threads need for each float32
// product: at 2 threads on 2 cores, fp32 feature extraction and fine-tuning ran 2.1x slower
// than with the spin shortened (BENCHMARKS.md, "OpenMP's idle threads"). libgomp also reads
// its variables only when it loads.
//
// Torch-free: this runs before anything else in main.
#include <optional>
#include <string>
#include <string_view>

namespace flipless::train {

// What this CPU can run: CPUID, and XGETBV for the registers the OS saves.
struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 and FMA3 (OpenBLAS's Haswell kernels)
  bool avx512 = false;       // AVX-512 F, CD, BW, DQ, VL (its SkylakeX kernels)
  bool avx512_bf16 = false;  // AVX512-BF16 (its Cooperlake kernels; bf16 dot products)
  bool amx_bf16 = false;     // AMX tiles with bf16 (oneDNN's fastest bf16 path)
};

// The features of the CPU this process runs on (all false off x86-64).
CpuFeatures cpu_features();

// The CPU's brand string from CPUID ("" when it has none).
std::string cpu_model_name();

// The instruction-set level of an OpenBLAS core name (openblas_get_corename(), case-insensitive):
// 1 SSE only (Prescott, Core2, Nehalem, ...), 2 AVX (Sandybridge, Bulldozer, ...), 3 AVX2
// (Haswell, Zen, ...), 4 AVX-512 (SkylakeX), 5 AVX-512 with BF16 (Cooperlake,
// SapphireRapids); 0 for a name this table does not know.
int openblas_core_level(std::string_view core);

// The OPENBLAS_CORETYPE whose kernels are the fastest correct ones for a CPU with `cpu`
// (Cooperlake, SkylakeX or Haswell: measured side by side, and the encoder's golden tests pass
// under each; BENCHMARKS.md); nullopt when the CPU has no AVX2.
std::optional<std::string> best_openblas_core(const CpuFeatures& cpu);

// What the start-up step does.
struct BlasKernelChoice {
  bool reexec = false;  // re-execute with OPENBLAS_CORETYPE=core
  std::string core;     // the kernel to ask for (when reexec)
  std::string reason;   // one line, for `flipless devices`
};

// The start-up decision, a pure function. `loaded_core`: what OpenBLAS chose ("" when no
// OpenBLAS is loaded); `coretype_env`: OPENBLAS_CORETYPE (nullopt when unset); `opted_out`:
// FLIPLESS_NO_BLAS_REEXEC is set; `reexecuted`: this process is the re-executed one.
// Re-executes only when OpenBLAS chose on its own a kernel of a lower level than the best
// for this CPU.
BlasKernelChoice choose_blas_kernel(std::string_view loaded_core, std::optional<std::string_view> coretype_env,
                                    bool opted_out, bool reexecuted, const CpuFeatures& cpu);

// What the start-up step does about OpenMP's spinning threads.
struct OpenMpSpinChoice {
  bool set = false;    // re-execute with GOMP_SPINCOUNT=value
  std::string value;   // (when set)
  std::string reason;  // one line, for `flipless devices`
};

// The spin count libgomp's idle threads get from flipless: long enough for back-to-back
// parallel regions, short enough to hand the core to OpenBLAS's threads.
inline constexpr const char* kOpenMpSpinCount = "10000";

// The start-up decision, a pure function: shorten the spin only when OpenBLAS is loaded (its
// pool competes with OpenMP's), the CPU has more than one core, the user set neither
// GOMP_SPINCOUNT nor OMP_WAIT_POLICY, FLIPLESS_NO_BLAS_REEXEC is not set, and this process is
// not already the re-executed one.
OpenMpSpinChoice choose_openmp_spin(bool have_openblas, unsigned cores, bool spincount_env, bool wait_policy_env, bool opted_out,
                                    bool reexecuted);

// Whether a subcommand (argv[1]) computes with libtorch's thread pools, and so is worth a
// re-execution (about 0.4 s, the loading of libtorch once more): train, predict, serve,
// experiment, demo, cache and devices. Others (compare, data, ...) never re-execute.
bool computes_with_torch(std::string_view subcommand);

// The first call in main: re-executes this program (/proc/self/exe, same arguments) with
// OPENBLAS_CORETYPE set when choose_blas_kernel says so, and GOMP_SPINCOUNT when
// choose_openmp_spin says so, but only when `computes` (the CLI passes
// computes_with_torch(argv[1]); benchmarks pass true); otherwise, or when exec fails, returns and
// the process goes on as it is. Nothing may have run before it.
// FLIPLESS_TEST_BLAS_CORETYPE_AS_DETECTED=1 (tests only) makes it treat OPENBLAS_CORETYPE as
// what OpenBLAS detected, so the re-execution can be tested on a CPU that OpenBLAS knows.
void select_blas_kernel_at_startup(char** argv, bool computes = true);

// The BLAS of this process, as OpenBLAS reports it.
struct BlasInfo {
  bool openblas = false;  // false: no OpenBLAS loaded (libtorch's BLAS is something else, e.g. MKL)
  std::string config;     // openblas_get_config(): version, build options, kernel
  std::string core;       // openblas_get_corename(): the kernels in use
  std::string chosen_by;  // how the kernels were chosen, one line
  int threads = 0;        // OpenBLAS's thread pool size
  std::string openmp_spin;  // how OpenMP's idle threads wait, one line
};

BlasInfo blas_info();

// Caps OpenBLAS's own thread pool at `n` (>= 1); nothing without OpenBLAS. libtorch's
// set_num_threads does not reach it: train::set_threads sets both.
void set_blas_threads(int n);

// float32 GFLOP/s of one-thread OpenBLAS sgemm on n x n x n, called directly (best of
// `repeats`); nullopt without OpenBLAS. The check that libtorch's products are measured against.
std::optional<double> openblas_sgemm_gflops(int n = 1024, int repeats = 5);

}  // namespace flipless::train

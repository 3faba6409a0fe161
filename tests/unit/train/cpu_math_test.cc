// The CPU math path: the start-up kernel decision, thread settings that reach OpenBLAS, and the
// encoder's golden tests under every OpenBLAS kernel this CPU can run (the start-up step may
// pick any of them on some machine, and old OpenBLAS kernels have had wrong-result bugs).
#include "flipless/train/cpu_math.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "flipless/train/device.h"

namespace flipless::train {
namespace {

CpuFeatures avx2() { return {true, false, false, false}; }
CpuFeatures avx512() { return {true, true, false, false}; }
CpuFeatures avx512_bf16() { return {true, true, true, false}; }

TEST(CpuMath, CoreLevelsRankKernelsByInstructionSet) {
  EXPECT_EQ(openblas_core_level("Prescott"), 1);
  EXPECT_EQ(openblas_core_level("NEHALEM"), 1);
  EXPECT_EQ(openblas_core_level("Sandybridge"), 2);
  EXPECT_EQ(openblas_core_level("haswell"), 3);
  EXPECT_EQ(openblas_core_level("Zen"), 3);
  EXPECT_EQ(openblas_core_level("SkylakeX"), 4);
  EXPECT_EQ(openblas_core_level("Cooperlake"), 5);
  EXPECT_EQ(openblas_core_level("SapphireRapids"), 5);
  EXPECT_EQ(openblas_core_level("Zen7"), 0);
  EXPECT_EQ(openblas_core_level(""), 0);
}

TEST(CpuMath, BestKernelFollowsTheCpu) {
  EXPECT_EQ(best_openblas_core(avx512_bf16()), "Cooperlake");
  EXPECT_EQ(best_openblas_core(avx512()), "SkylakeX");
  EXPECT_EQ(best_openblas_core(avx2()), "Haswell");
  EXPECT_EQ(best_openblas_core(CpuFeatures{}), std::nullopt);
}

TEST(CpuMath, ReexecutesOnlyWhenOpenBlasFellBackOnItsOwn) {
  const auto generic = choose_blas_kernel("Prescott", std::nullopt, false, false, avx512_bf16());
  EXPECT_TRUE(generic.reexec);
  EXPECT_EQ(generic.core, "Cooperlake");
  EXPECT_EQ(choose_blas_kernel("Prescott", std::nullopt, false, false, avx2()).core, "Haswell");
  EXPECT_EQ(choose_blas_kernel("Sandybridge", std::nullopt, false, false, avx512()).core, "SkylakeX");
  // Kept: the user's variable, the opt-out, a second time, a good or unknown choice, no AVX2, no OpenBLAS.
  const auto user = choose_blas_kernel("Haswell", "Haswell", false, false, avx512_bf16());
  EXPECT_FALSE(user.reexec);
  EXPECT_EQ(user.reason, "OPENBLAS_CORETYPE=Haswell is set; respected");
  EXPECT_FALSE(choose_blas_kernel("Prescott", std::nullopt, true, false, avx512_bf16()).reexec);
  EXPECT_FALSE(choose_blas_kernel("Prescott", std::nullopt, false, true, avx512_bf16()).reexec);
  EXPECT_FALSE(choose_blas_kernel("Cooperlake", std::nullopt, false, false, avx512_bf16()).reexec);
  EXPECT_FALSE(choose_blas_kernel("Zen", std::nullopt, false, false, avx2()).reexec);
  EXPECT_FALSE(choose_blas_kernel("SapphireRapids", std::nullopt, false, false, avx512_bf16()).reexec);
  EXPECT_FALSE(choose_blas_kernel("Zen7", std::nullopt, false, false, avx512_bf16()).reexec);
  EXPECT_FALSE(choose_blas_kernel("Prescott", std::nullopt, false, false, CpuFeatures{}).reexec);
  EXPECT_FALSE(choose_blas_kernel("", std::nullopt, false, false, avx512_bf16()).reexec);
}

TEST(CpuMath, ShortensOpenMpSpinOnlyWhereOpenBlasCompetesAndTheUserSaidNothing) {
  const auto shortened = choose_openmp_spin(true, 2, false, false, false, false);
  EXPECT_TRUE(shortened.set);
  EXPECT_EQ(shortened.value, kOpenMpSpinCount);
  EXPECT_FALSE(choose_openmp_spin(false, 2, false, false, false, false).set);  // no OpenBLAS (MKL builds)
  EXPECT_FALSE(choose_openmp_spin(true, 1, false, false, false, false).set);   // one core: nothing to compete for
  EXPECT_FALSE(choose_openmp_spin(true, 2, true, false, false, false).set);    // GOMP_SPINCOUNT set
  EXPECT_FALSE(choose_openmp_spin(true, 2, false, true, false, false).set);    // OMP_WAIT_POLICY set
  EXPECT_FALSE(choose_openmp_spin(true, 2, false, false, true, false).set);    // opted out
  EXPECT_FALSE(choose_openmp_spin(true, 2, false, false, false, true).set);    // the re-executed process
  EXPECT_EQ(choose_openmp_spin(true, 2, true, false, false, false).reason, "set in the environment; respected");
}

TEST(CpuMath, OnlyTorchSubcommandsPayForARexecution) {
  for (const char* s : {"train", "predict", "serve", "experiment", "demo", "cache", "devices"}) EXPECT_TRUE(computes_with_torch(s)) << s;
  for (const char* s : {"compare", "data", "ensemble", "vote", "methods", "models", "--help", "--version", ""}) {
    EXPECT_FALSE(computes_with_torch(s)) << s;
  }
}

TEST(CpuMath, CpuFeaturesAreConsistent) {
  const auto f = cpu_features();
  if (f.avx512) {
    EXPECT_TRUE(f.avx2_fma);
  }
  if (f.avx512_bf16) {
    EXPECT_TRUE(f.avx512);
  }
}

TEST(CpuMath, SetThreadsReachesOpenBlasPool) {
  const int torch_before = at::get_num_threads();
  set_threads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  const auto info = blas_info();
  if (info.openblas) {
    EXPECT_EQ(info.threads, 1);
    set_threads(2);
    EXPECT_EQ(blas_info().threads, 2);
    EXPECT_EQ(at::get_num_threads(), 2);
  }
  set_threads(torch_before);
}

TEST(CpuMath, GemmRatesAreMeasured) {
  const int threads = at::get_num_threads();
  const double fp32 = torch_gemm_gflops(torch::kFloat32, 256, 2);
  EXPECT_TRUE(std::isfinite(fp32) && fp32 > 0) << fp32;
  EXPECT_EQ(at::get_num_threads(), threads);  // restored
  if (blas_info().openblas) {
    const auto direct = openblas_sgemm_gflops(256, 2);
    ASSERT_TRUE(direct.has_value());
    EXPECT_TRUE(std::isfinite(*direct) && *direct > 0) << *direct;
  }
}

// The encoder's golden tests (transformers' outputs on tiny BERT / ELECTRA / RoBERTa and
// MiniLM) in a child process under each OpenBLAS kernel that this CPU can run.
TEST(CpuMath, GoldenEncoderTestsPassUnderEveryKernelThisCpuRuns) {
  if (!blas_info().openblas) GTEST_SKIP() << "libtorch here does not use OpenBLAS";
  const auto best = best_openblas_core(cpu_features());
  if (!best) GTEST_SKIP() << "no AVX2 on this CPU";
  for (const char* core : {"Haswell", "SkylakeX", "Cooperlake"}) {
    if (openblas_core_level(core) > openblas_core_level(*best)) continue;
    const std::string cmd = std::string("OPENBLAS_CORETYPE=") + core + " '" + FLIPLESS_NN_TEST +
                            "' --gtest_filter='Bert.*:PretrainedClassifier.*' >/dev/null 2>&1";
    const int status = std::system(cmd.c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "golden encoder tests failed under OpenBLAS " << core;
  }
}

}  // namespace
}  // namespace flipless::train

// Uses the installed headers and libraries: metrics on arrays, and a bundled dataset found
// through the installed share/ folder.
#include <cstdio>
#include <vector>

#include "flipless/data/registry.h"
#include "flipless/metrics/rates.h"
#include "flipless/version.h"

int main() {
  const std::vector<int> y = {0, 1, 1, 0}, old_pred = {0, 1, 0, 0}, new_pred = {0, 0, 1, 0};
  const double nfr = flipless::metrics::negative_flip_rate(y, old_pred, new_pred);
  const auto dev = flipless::data::load_dataset("mrpc:dev");
  std::printf("flipless %s: nfr=%.2f, mrpc:dev has %zu examples\n", std::string(flipless::kVersion).c_str(), nfr, dev.size());
  return nfr == 0.25 && dev.size() == 408 ? 0 : 1;
}

#pragma once
#include <cstddef>
#include <span>

namespace flipless::metrics::detail {
// Throws InputError unless the three arrays are non-empty and of one length and the weights
// (if any) match that length and are finite and >= 0.
void check_inputs(std::size_t n_true, std::size_t n_old, std::size_t n_new, std::span<const double> weights);
}  // namespace flipless::metrics::detail

#pragma once
// Shared by the binding files of the flipless._flipless extension (python/src/). The public
// Python API lives in python/flipless/; this module is its private core.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace flipless::python {

namespace nb = nanobind;

// Read-only, C-contiguous CPU arrays: NumPy memory used where it lies, never copied here.
template <typename T, typename Shape = nb::ndim<1>>
using In = nb::ndarray<const T, Shape, nb::c_contig, nb::device::cpu>;

// A NumPy array that owns `values` (moved, not copied), shaped (rows, cols) or (rows,) when
// cols is 0.
template <typename T>
nb::ndarray<nb::numpy, T> to_numpy(std::vector<T>&& values, std::size_t rows, std::size_t cols = 0) {
  auto* owned = new std::vector<T>(std::move(values));
  nb::capsule owner(owned, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  if (cols == 0) return nb::ndarray<nb::numpy, T>(owned->data(), {rows}, owner);
  return nb::ndarray<nb::numpy, T>(owned->data(), {rows, cols}, owner);
}

void bind_metrics(nb::module_& m);
void bind_compare(nb::module_& m);
void bind_cache(nb::module_& m);

}  // namespace flipless::python

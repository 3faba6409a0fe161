// flipless._flipless: the C++ core of the Python package. flipless::Error and its subclasses
// become the Python exception classes that flipless/_errors.py defines (InputError is a
// ValueError, IoError an OSError, ...), registered once by the package on import.
#include <Python.h>

#include <exception>

#include "bindings.h"
#include "flipless/core/error.h"

namespace flipless::python {
namespace {

// Python classes for each C++ error; owned references, kept for the life of the process.
struct ErrorClasses {
  PyObject* error = nullptr;
  PyObject* input = nullptr;
  PyObject* config = nullptr;
  PyObject* model = nullptr;
  PyObject* io = nullptr;
};
ErrorClasses error_classes;

void set_error(PyObject* cls, PyObject* fallback, const char* what) {
  PyErr_SetString(cls != nullptr ? cls : fallback, what);
}

void translate(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const InputError& e) {
    set_error(error_classes.input, PyExc_ValueError, e.what());
  } catch (const ConfigError& e) {
    set_error(error_classes.config, PyExc_ValueError, e.what());
  } catch (const IoError& e) {
    set_error(error_classes.io, PyExc_OSError, e.what());
  } catch (const ModelError& e) {
    set_error(error_classes.model, PyExc_RuntimeError, e.what());
  } catch (const Error& e) {
    set_error(error_classes.error, PyExc_RuntimeError, e.what());
  }
}

void keep(PyObject*& slot, nb::handle cls) {
  Py_XDECREF(slot);
  slot = cls.ptr();
  Py_INCREF(slot);
}

}  // namespace
}  // namespace flipless::python

NB_MODULE(_flipless, m) {
  namespace fp = flipless::python;
  using namespace nanobind::literals;
  m.doc() = "The C++ core of flipless (torch-free): metrics, compare reports and the old-logit cache.";
  nanobind::register_exception_translator(fp::translate);
  m.def(
      "_set_error_classes",
      [](nanobind::handle error, nanobind::handle input, nanobind::handle config, nanobind::handle model,
         nanobind::handle io) {
        fp::keep(fp::error_classes.error, error);
        fp::keep(fp::error_classes.input, input);
        fp::keep(fp::error_classes.config, config);
        fp::keep(fp::error_classes.model, model);
        fp::keep(fp::error_classes.io, io);
      },
      "error"_a, "input"_a, "config"_a, "model"_a, "io"_a,
      "Registers the Python classes raised for flipless::Error, InputError, ConfigError, ModelError and IoError.");
  fp::bind_metrics(m);
  fp::bind_compare(m);
  fp::bind_cache(m);
}

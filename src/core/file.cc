#include "flipless/core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <utility>

#include "flipless/core/error.h"

namespace flipless::core {

struct InputFile::Mapping {
  void* addr = nullptr;
  std::size_t size = 0;
  ~Mapping() {
    if (addr != nullptr) munmap(addr, size);
  }
};

InputFile::InputFile(InputFile&&) noexcept = default;
InputFile& InputFile::operator=(InputFile&&) noexcept = default;
InputFile::~InputFile() = default;

namespace {

bool ends_with_gz(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  return name.size() > 3 && name.compare(name.size() - 3, 3, ".gz") == 0;
}

std::string read_gzip(const std::filesystem::path& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (gz == nullptr) {
    throw IoError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  }
  std::string out;
  char buffer[1 << 16];
  for (;;) {
    const int got = gzread(gz, buffer, sizeof buffer);
    if (got < 0) {
      int code = 0;
      const std::string what = gzerror(gz, &code);
      gzclose(gz);
      throw IoError(fmt::format("{}: corrupt gzip data: {}", path.string(), what));
    }
    if (got == 0) break;
    if (out.empty() && gzdirect(gz) == 1) {
      gzclose(gz);
      throw IoError(fmt::format("{}: not gzip data (the name ends in .gz)", path.string()));
    }
    out.append(buffer, static_cast<std::size_t>(got));
  }
  gzclose(gz);
  return out;
}

}  // namespace

InputFile InputFile::open(const std::filesystem::path& path) {
  InputFile file;
  file.source_ = path.string();
  if (ends_with_gz(path)) {
    file.owned_ = read_gzip(path);
    file.bytes_ = file.owned_;
    return file;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw IoError(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(fmt::format("{}: not a regular file", path.string()));
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size > 0) {
    void* addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      ::close(fd);
      throw IoError(fmt::format("{}: cannot map: {}", path.string(), std::strerror(errno)));
    }
    madvise(addr, size, MADV_SEQUENTIAL);
    file.mapping_ = std::make_unique<Mapping>();
    file.mapping_->addr = addr;
    file.mapping_->size = size;
    file.bytes_ = std::string_view(static_cast<const char*>(addr), size);
  }
  ::close(fd);
  return file;
}

InputFile InputFile::from_string(std::string bytes, std::string source) {
  InputFile file;
  file.owned_ = std::move(bytes);
  file.bytes_ = file.owned_;
  file.source_ = std::move(source);
  return file;
}

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path tmp =
      path.string() + fmt::format(".tmp.{}.{}", ::getpid(), counter.fetch_add(1));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw IoError(fmt::format("{}: cannot write: {}", path.string(), std::strerror(errno)));
  }
  const char* p = content.data();
  std::size_t left = content.size();
  bool ok = true;
  while (left > 0) {
    const ssize_t wrote = ::write(fd, p, left);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      ok = false;
      break;
    }
    p += wrote;
    left -= static_cast<std::size_t>(wrote);
  }
  const int saved = errno;
  ok = ok && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = ok ? errno : saved;
    std::remove(tmp.c_str());
    throw IoError(fmt::format("{}: cannot write: {}", path.string(), std::strerror(err)));
  }
}

bool LineCursor::next(std::string_view& line) {
  if (rest_.empty()) return false;
  const std::size_t end = rest_.find('\n');
  if (end == std::string_view::npos) {
    line = rest_;
    rest_ = {};
  } else {
    line = rest_.substr(0, end);
    rest_.remove_prefix(end + 1);
  }
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  ++line_number_;
  return true;
}

}  // namespace flipless::core

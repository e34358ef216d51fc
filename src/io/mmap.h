// Read-only memory-mapped file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace bwla {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the pages covering [p, p + n) from this process's resident set (they
  // are re-read from the file if touched again). Ranges outside the mapping are
  // clipped; a no-op for an empty mapping.
  void release(const void* p, size_t n) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_text_file(const std::string& path);
bool file_exists(const std::string& path);

}  // namespace bwla

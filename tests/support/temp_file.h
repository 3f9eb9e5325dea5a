// A file with given contents under $TMPDIR (default /tmp), removed when the
// object goes away: config files for sluice runs in tests.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::test {

class TempFile {
 public:
  // Throws std::runtime_error if the file cannot be created or written.
  explicit TempFile(std::string_view contents, std::string_view suffix = ".yaml");
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile();

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The whole file ("" if it cannot be read), and how many '\n' it holds.
std::string read_file(const std::string& path);
size_t count_lines(std::string_view text);

}  // namespace sluice::test

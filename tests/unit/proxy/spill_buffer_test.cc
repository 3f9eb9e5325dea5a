#include "proxy/spill_buffer.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "tests/unit/loop_fixture.h"

namespace sluice::proxy {
namespace {

// Open descriptors of this process.
size_t open_fds() {
  size_t n = 0;
  DIR* d = opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the directory stream's own descriptor
}

// Entries of a directory other than . and ..
size_t entries(const std::string& dir) {
  size_t n = 0;
  DIR* d = opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") ++n;
  }
  closedir(d);
  return n;
}

// A fresh, empty directory for the buffers' files; removed afterwards.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sluice-spill-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { rmdir(path.c_str()); }  // fails, visibly in CHECKs, if a file was left
};

// Distinct bytes, so a chunk out of order or doubled shows up.
std::string pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

struct Recorder final : SpillOwner {
  std::string read_back;
  int written_calls = 0;
  int read_calls = 0;
  int failures = 0;
  bool read_outstanding = false;

  void on_spill_written(SpillBuffer& b) override {
    ++written_calls;
    if (b.error() != 0) ++failures;
  }
  void on_spill_read(SpillBuffer& b, const char* data, size_t len) override {
    ++read_calls;
    read_outstanding = false;
    if (len == 0) {
      CHECK(b.error() != 0);
      ++failures;
      return;
    }
    read_back.append(data, len);
  }
};

class SpillFixture : public test::LoopFixture {
 public:
  ~SpillFixture() {
    // Every operation must finish before the loop can close.
    CHECK(run_until([] { return SpillBuffer::operations_in_flight() == 0; }));
  }

  bool settle(SpillBuffer& b) {
    return run_until([&] { return b.pending() == 0 || b.error() != 0; });
  }

  // Reads the whole file part from the current position, `chunk` at a time.
  std::string read_all(SpillBuffer& b, Recorder& r, size_t chunk = SpillBuffer::kReadChunk) {
    r.read_back.clear();
    while (b.unread() > 0 && b.error() == 0) {
      REQUIRE(b.read(chunk));
      r.read_outstanding = true;
      REQUIRE(run_until([&] { return !r.read_outstanding; }));
    }
    return r.read_back;
  }
};

TEST_CASE_METHOD(SpillFixture, "spill buffer: within the memory part no file is made",
                 "[spill_buffer]") {
  TempDir dir;
  const size_t fds = open_fds();
  Recorder r;
  SpillBuffer b;
  b.configure(loop(), &r, {.memory_limit = 1024, .temp_dir = dir.path});
  std::string data = pattern(1000, 1);
  b.append(data.substr(0, 400));
  b.append(data.substr(400));
  CHECK(b.memory() == data);
  CHECK(b.size() == 1000);
  CHECK(b.file_size() == 0);
  CHECK(b.pending() == 0);
  CHECK_FALSE(b.read());  // nothing in the file part
  CHECK(SpillBuffer::operations_in_flight() == 0);
  CHECK(open_fds() == fds);
  b.reset();
  CHECK(b.size() == 0);
}

TEST_CASE_METHOD(SpillFixture, "spill buffer: past the memory part bytes go to an unlinked file",
                 "[spill_buffer]") {
  TempDir dir;
  const size_t fds = open_fds();
  Recorder r;
  SpillBuffer b;
  bool o_tmpfile = GENERATE(true, false);
  INFO("O_TMPFILE: " << o_tmpfile);
  b.configure(loop(), &r, {.memory_limit = 4096, .temp_dir = dir.path, .use_o_tmpfile = o_tmpfile});
  std::string data = pattern(300 * 1024, 2);
  for (size_t off = 0; off < data.size(); off += 10000) b.append(data.substr(off, 10000));
  CHECK(b.memory() == data.substr(0, 4096));
  CHECK(b.file_size() == data.size() - 4096);
  CHECK(b.pending() > 0);  // nothing is written before the loop runs
  REQUIRE(settle(b));
  CHECK(b.error() == 0);
  CHECK(r.written_calls >= 1);
  CHECK(open_fds() == fds + 1);
  CHECK(entries(dir.path) == 0);  // there is a file, but no name for it
  CHECK(std::string(b.memory()) + read_all(b, r, 7777) == data);
  b.reset();
  REQUIRE(run_until([] { return SpillBuffer::operations_in_flight() == 0; }));
  CHECK(open_fds() == fds);
  CHECK(entries(dir.path) == 0);
}

TEST_CASE_METHOD(SpillFixture, "spill buffer: what is read back equals what was appended",
                 "[spill_buffer]") {
  TempDir dir;
  std::mt19937 rng(42);
  for (int round = 0; round < 25; ++round) {
    Recorder r;
    SpillBuffer b;
    size_t limit = rng() % 3 == 0 ? 0 : rng() % 100000;
    size_t total = rng() % (3 * 1024 * 1024);
    size_t chunk = 1 + rng() % 300000;
    bool o_tmpfile = rng() % 2 == 0;
    INFO("round " << round << ": limit " << limit << ", total " << total << ", read chunk " << chunk);
    b.configure(loop(), &r, {.memory_limit = limit, .temp_dir = dir.path, .use_o_tmpfile = o_tmpfile});
    std::string data = pattern(total, static_cast<uint32_t>(round));
    for (size_t off = 0; off < data.size();) {
      size_t n = std::min<size_t>(1 + rng() % 70000, data.size() - off);
      b.append(data.data() + off, n);
      off += n;
      // Sometimes let writes land between appends, sometimes pile them up.
      if (rng() % 4 == 0) uv_run(loop(), UV_RUN_NOWAIT);
    }
    CHECK(b.size() == total);
    CHECK(b.memory().size() == std::min(limit, total));
    // Reading may start before every write has landed: it waits for them.
    CHECK(std::string(b.memory()) + read_all(b, r, chunk) == data);
    CHECK(b.error() == 0);
    b.reset();
  }
  REQUIRE(run_until([] { return SpillBuffer::operations_in_flight() == 0; }));
  CHECK(entries(dir.path) == 0);
}

TEST_CASE_METHOD(SpillFixture, "spill buffer: the content replays any number of times",
                 "[spill_buffer]") {
  TempDir dir;
  Recorder r;
  SpillBuffer b;
  b.configure(loop(), &r, {.memory_limit = 1000, .temp_dir = dir.path});
  std::string data = pattern(700 * 1024, 3);
  b.append(data);
  std::string file_part = data.substr(1000);
  for (int i = 0; i < 3; ++i) {
    b.rewind();
    CHECK(read_all(b, r) == file_part);
  }

  SECTION("a rewind with a read in flight drops that read") {
    b.rewind();
    REQUIRE(b.read(100));
    CHECK(b.reading());
    r.read_outstanding = true;
    r.read_back.clear();
    int calls = r.read_calls;
    b.rewind();  // the read above is now stale: its bytes must not arrive
    CHECK_FALSE(b.reading());
    REQUIRE(b.read(50));
    REQUIRE(run_until([&] { return !r.read_outstanding; }));
    CHECK(r.read_calls == calls + 1);
    CHECK(r.read_back == file_part.substr(0, 50));
    CHECK(b.read_position() == 50);
  }
}

TEST_CASE_METHOD(SpillFixture, "spill buffer: consumed as it arrives, the file is reused from its start",
                 "[spill_buffer]") {
  TempDir dir;
  Recorder r;
  SpillBuffer b;
  b.configure(loop(), &r, {.memory_limit = 0, .temp_dir = dir.path});
  std::string all;
  std::string got;
  for (int i = 0; i < 6; ++i) {
    std::string piece = pattern(200 * 1024 + static_cast<size_t>(i), static_cast<uint32_t>(10 + i));
    all += piece;
    b.append(piece);
    got += read_all(b, r);
    REQUIRE(settle(b));
    // Everything written was read: the next piece starts at offset 0 again.
    CHECK(b.discard_read());
    CHECK(b.file_size() == 0);
    CHECK(b.unread() == 0);
  }
  CHECK(got == all);

  SECTION("nothing is forgotten while bytes are unread") {
    b.append(std::string(10, 'x'));
    CHECK_FALSE(b.discard_read());
    CHECK(read_all(b, r) == std::string(10, 'x'));
    REQUIRE(settle(b));
    CHECK(b.discard_read());
  }
}

TEST_CASE_METHOD(SpillFixture, "spill buffer: reset closes the file even with I/O in flight",
                 "[spill_buffer]") {
  TempDir dir;
  const size_t fds = open_fds();
  Recorder r;
  SpillBuffer b;
  bool o_tmpfile = GENERATE(true, false);
  b.configure(loop(), &r, {.memory_limit = 64 * 1024, .temp_dir = dir.path, .use_o_tmpfile = o_tmpfile});
  std::string data = pattern(2 * 1024 * 1024, 4);

  SECTION("while opening") {
    b.append(data);
    CHECK(SpillBuffer::operations_in_flight() == 1);
  }
  SECTION("while writing and reading") {
    b.append(data.substr(0, 1024 * 1024));
    REQUIRE(settle(b));
    b.append(data.substr(1024 * 1024));
    REQUIRE(b.read());
    CHECK(SpillBuffer::operations_in_flight() == 2);
  }
  const char* memory_before = b.memory().data();
  b.reset();
  CHECK(b.size() == 0);
  CHECK(b.pending() == 0);
  REQUIRE(run_until([] { return SpillBuffer::operations_in_flight() == 0; }));
  // The orphaned operations told nobody.
  CHECK(r.read_calls == 0);
  CHECK(r.failures == 0);
  CHECK(open_fds() == fds);
  CHECK(entries(dir.path) == 0);

  // Reusable, and its memory part keeps its block.
  b.configure(loop(), &r, {.memory_limit = 64 * 1024, .temp_dir = dir.path});
  b.append(data.substr(0, 64 * 1024));
  CHECK(b.memory().data() == memory_before);
  CHECK(b.memory() == data.substr(0, 64 * 1024));
  b.reset();
}

TEST_CASE_METHOD(SpillFixture, "spill buffer: a temp dir that cannot be written is an error, not a crash",
                 "[spill_buffer]") {
  const size_t fds = open_fds();
  Recorder r;
  SpillBuffer b;
  std::string dir = GENERATE(std::string("/nonexistent/sluice"), std::string("/proc/self/status"));
  bool o_tmpfile = GENERATE(true, false);
  INFO(dir << ", O_TMPFILE: " << o_tmpfile);
  b.configure(loop(), &r, {.memory_limit = 100, .temp_dir = dir, .use_o_tmpfile = o_tmpfile});
  b.append(pattern(5000, 5));
  b.append(pattern(5000, 6));
  REQUIRE(run_until([&] { return r.failures > 0; }));
  CHECK(r.failures == 1);
  CHECK(b.error() != 0);
  CHECK(b.pending() == 0);
  CHECK(b.memory().size() == 100);
  // Later appends and reads are refused quietly.
  b.append(pattern(5000, 7));
  CHECK(b.pending() == 0);
  CHECK_FALSE(b.read());
  REQUIRE(run_until([] { return SpillBuffer::operations_in_flight() == 0; }));
  CHECK(r.failures == 1);
  CHECK(open_fds() == fds);
  b.reset();
  CHECK(b.error() == 0);
}

TEST_CASE_METHOD(SpillFixture, "spill buffer: a read of bytes still being written waits for them",
                 "[spill_buffer]") {
  TempDir dir;
  Recorder r;
  SpillBuffer b;
  b.configure(loop(), &r, {.memory_limit = 0, .temp_dir = dir.path});
  b.append(pattern(1000, 8));
  REQUIRE(b.read(5000));     // the file is not even open yet
  CHECK_FALSE(b.read(10));   // one read at a time
  r.read_outstanding = true;
  REQUIRE(run_until([&] { return !r.read_outstanding; }));
  CHECK(r.read_back == pattern(1000, 8));
  CHECK(b.unread() == 0);
  CHECK_FALSE(b.read());
}

}  // namespace
}  // namespace sluice::proxy

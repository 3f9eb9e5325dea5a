// A child process for tests: spawned with posix_spawn, its stdout and stderr
// merged into one pipe that a background thread drains into a buffer (so the
// child never blocks on a full pipe), stopped and reaped by PID only.
//
// Set SLUICE_TEST_ECHO=1 to also copy the child's output to our stderr.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

class Process {
 public:
  // argv[0] is a path, or a name looked up in PATH. `env` entries
  // ("NAME=VALUE") are added to, and override, the current environment.
  // stdin is /dev/null. Throws std::runtime_error if the spawn fails.
  explicit Process(std::vector<std::string> argv, std::vector<std::string> env = {});
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // SIGKILLs and reaps the child if it has not been reaped yet.
  ~Process();

  pid_t pid() const { return pid_; }

  // Sends `sig` unless the child was already reaped (its PID may be reused).
  void signal(int sig);

  // Exit status, or -N if killed by signal N; nullopt if still running after
  // `timeout`. Once reaped, returns the same status at once. When it returns
  // a status, output() holds everything the child printed.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

  // Waits for an output line (stdout or stderr, already printed or yet to
  // come) that contains `pattern` as a substring or matches it as an
  // ECMAScript regex (std::regex_search). Stores the first such line,
  // without its newline, in `*line_out`. False on timeout or once the
  // output has ended without a match.
  bool wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout,
                     std::string* line_out = nullptr);

  // Everything the child has printed so far.
  std::string output() const;

 private:
  void read_loop(bool echo);

  pid_t pid_ = -1;
  std::optional<int> status_;  // set once reaped

  int out_fd_ = -1;             // read end of the child's stdout/stderr pipe
  int stop_fds_[2] = {-1, -1};  // written by the destructor to stop read_loop
  std::thread reader_;

  // Guarded by mu_: filled by read_loop, read by the test thread.
  mutable std::mutex mu_;
  std::condition_variable grew_;
  std::string output_;
  bool output_ended_ = false;
};

}  // namespace sluice::test

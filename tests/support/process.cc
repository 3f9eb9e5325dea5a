#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <stdexcept>

extern char** environ;

namespace sluice::test {

namespace {

// The current environment with `extra` applied: same-name entries replaced.
std::vector<std::string> merged_env(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    std::string_view name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& x : extra) {
      if (x.compare(0, x.find('='), name) == 0) overridden = true;
    }
    if (!overridden) env.emplace_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

}  // namespace

Process::Process(std::vector<std::string> argv, std::vector<std::string> env) {
  if (argv.empty()) throw std::runtime_error("Process: empty argv");
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) fail("pipe2", errno);
  if (pipe2(stop_fds_, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(out[0]);
    ::close(out[1]);
    fail("pipe2", err);
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);  // dup2 drops O_CLOEXEC
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);

  // The test runner may have signals blocked or ignored (a handler reverts on
  // exec, SIG_IGN does not); the child must see SIGTERM and SIGPIPE normally.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> envs = merged_env(env);
  std::vector<char*> c_argv = c_strings(argv);
  std::vector<char*> c_env = c_strings(envs);
  int rc = posix_spawnp(&pid_, c_argv[0], &actions, &attr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(stop_fds_[0]);
    ::close(stop_fds_[1]);
    fail("spawn " + argv[0], rc);
  }
  out_fd_ = out[0];

  const char* echo = std::getenv("SLUICE_TEST_ECHO");
  reader_ = std::thread([this, e = echo && *echo == '1'] { read_loop(e); });
}

Process::~Process() {
  if (!status_) {
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  // A grandchild could keep the pipe open forever, so stop the reader
  // explicitly instead of waiting for end of output.
  char c = 0;
  while (::write(stop_fds_[1], &c, 1) < 0 && errno == EINTR) {
  }
  reader_.join();
  ::close(out_fd_);
  ::close(stop_fds_[0]);
  ::close(stop_fds_[1]);
}

void Process::read_loop(bool echo) {
  char buf[4096];
  for (;;) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {stop_fds_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (echo) {
      [[maybe_unused]] ssize_t ignored = ::write(2, buf, static_cast<size_t>(n));
    }
    std::lock_guard lock(mu_);
    output_.append(buf, static_cast<size_t>(n));
    grew_.notify_all();
  }
  std::lock_guard lock(mu_);
  output_ended_ = true;
  grew_.notify_all();
}

void Process::signal(int sig) {
  if (!status_) ::kill(pid_, sig);
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto nap = std::chrono::milliseconds(1);
  while (!status_) {
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFSIGNALED(st) ? -WTERMSIG(st) : WEXITSTATUS(st);
      // Let the reader catch up, so output() is complete once this returns.
      // Bounded: a grandchild may still hold the pipe open.
      std::unique_lock lock(mu_);
      grew_.wait_for(lock, std::chrono::seconds(1), [this] { return output_ended_; });
    } else if (r < 0 && errno != EINTR) {
      fail("waitpid", errno);
    } else if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    } else {
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::milliseconds(20));
    }
  }
  return status_;
}

bool Process::wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout,
                            std::string* line_out) {
  std::optional<std::regex> re;
  try {
    re.emplace(pattern);
  } catch (const std::regex_error&) {
    // Not a valid regex: substring matching alone.
  }
  auto matches = [&](const std::string& line) {
    return line.find(pattern) != std::string::npos || (re && std::regex_search(line, *re));
  };

  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  size_t scanned = 0;  // output_ before this offset holds only rejected lines
  for (;;) {
    for (;;) {
      size_t nl = output_.find('\n', scanned);
      // A last line without a newline counts only once the output has ended.
      if (nl == std::string::npos && !(output_ended_ && scanned < output_.size())) break;
      size_t end = nl == std::string::npos ? output_.size() : nl;
      std::string line = output_.substr(scanned, end - scanned);
      scanned = end + 1;
      if (matches(line)) {
        if (line_out) *line_out = std::move(line);
        return true;
      }
    }
    if (output_ended_ || std::chrono::steady_clock::now() >= deadline) return false;
    grew_.wait_until(lock, deadline);
  }
}

std::string Process::output() const {
  std::lock_guard lock(mu_);
  return output_;
}

}  // namespace sluice::test

/* alloc_counter.so: counts heap allocations per thread in a process it is
 * LD_PRELOADed into, and writes snapshots on a signal. The protocol (signal,
 * environment, snapshot format) is in alloc_counter.h.
 *
 * Each replacement forwards to glibc's __libc_* entry points rather than to
 * dlsym(RTLD_NEXT, "malloc"): dlsym itself allocates, which would recurse
 * into a malloc that is not resolved yet. glibc documents replacing these
 * functions as supported (malloc, free, calloc, realloc, plus the aligned
 * family), so its own internal allocations are counted too.
 */
#define _GNU_SOURCE
#include "alloc_counter.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

extern void* __libc_malloc(size_t size);
extern void* __libc_calloc(size_t n, size_t size);
extern void* __libc_realloc(void* p, size_t size);
extern void __libc_free(void* p);
extern void* __libc_memalign(size_t alignment, size_t size);
extern void* __libc_valloc(size_t size);
extern void* __libc_pvalloc(size_t size);

#define MAX_THREADS 512

struct counters {
  _Atomic int tid;
  _Atomic uint64_t allocs;
  _Atomic uint64_t frees;
  _Atomic uint64_t bytes;
};

/* Zero-initialised statics: usable before our constructor runs (the dynamic
 * loader and libc allocate before any constructor). */
static struct counters slots[MAX_THREADS];
static _Atomic unsigned slots_used;
static struct counters overflow; /* threads past MAX_THREADS share this one */
static _Atomic uint64_t snapshots;
static int main_tid;

static char out_path[4096];
static char tmp_path[4096 + 8];

static long trace_per_snapshot;
static _Atomic long trace_left;
static int trace_fd = 2;

/* initial-exec: a preloaded library gets static TLS, and the default model
 * would call __tls_get_addr, which may allocate, from inside malloc. */
static __thread struct counters* my_slot __attribute__((tls_model("initial-exec")));
/* Set while this thread is tracing: backtrace() may allocate (it loads
 * libgcc_s on first use), and those blocks are the tracer's, not the
 * program's. */
static __thread int in_hook __attribute__((tls_model("initial-exec")));

static int current_tid(void) { return (int)syscall(SYS_gettid); }

static struct counters* slot(void) {
  if (my_slot != NULL) return my_slot;
  unsigned i = atomic_fetch_add_explicit(&slots_used, 1, memory_order_relaxed);
  struct counters* c = i < MAX_THREADS ? &slots[i] : &overflow;
  atomic_store_explicit(&c->tid, current_tid(), memory_order_release);
  my_slot = c;
  return c;
}

/* Async-signal-safe formatting: no stdio, no allocation. */
struct line {
  char buf[256];
  size_t len;
};

static void put_str(struct line* l, const char* s) {
  while (*s != '\0' && l->len < sizeof l->buf) l->buf[l->len++] = *s++;
}

static void put_u64(struct line* l, uint64_t v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0 && l->len < sizeof l->buf) l->buf[l->len++] = digits[--n];
}

static void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static void flush_line(int fd, struct line* l) {
  write_all(fd, l->buf, l->len);
  l->len = 0;
}

static void trace(const char* kind, size_t size) {
  in_hook = 1;
  struct line l = {.len = 0};
  put_str(&l, "alloc ");
  put_str(&l, kind);
  put_str(&l, " ");
  put_u64(&l, size);
  put_str(&l, " tid ");
  put_u64(&l, (uint64_t)current_tid());
  put_str(&l, "\n");
  flush_line(trace_fd, &l);
  void* frames[48];
  int n = backtrace(frames, 48);
  backtrace_symbols_fd(frames, n, trace_fd);
  write_all(trace_fd, "\n", 1);
  in_hook = 0;
}

static void count_alloc(const char* kind, size_t size) {
  if (in_hook) return;
  struct counters* c = slot();
  atomic_fetch_add_explicit(&c->allocs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->bytes, size, memory_order_relaxed);
  if (atomic_load_explicit(&trace_left, memory_order_relaxed) > 0 &&
      atomic_fetch_sub_explicit(&trace_left, 1, memory_order_relaxed) > 0) {
    trace(kind, size);
  }
}

static void count_free(void* p) {
  if (p == NULL || in_hook) return;
  atomic_fetch_add_explicit(&slot()->frees, 1, memory_order_relaxed);
}

static void dump_one(int fd, struct counters* c, uint64_t* totals) {
  struct line l = {.len = 0};
  int tid = atomic_load_explicit(&c->tid, memory_order_acquire);
  uint64_t a = atomic_load_explicit(&c->allocs, memory_order_relaxed);
  uint64_t f = atomic_load_explicit(&c->frees, memory_order_relaxed);
  uint64_t b = atomic_load_explicit(&c->bytes, memory_order_relaxed);
  totals[0] += a;
  totals[1] += f;
  totals[2] += b;
  put_str(&l, "thread ");
  put_u64(&l, (uint64_t)tid);
  put_str(&l, tid == main_tid ? " main 1" : " main 0");
  put_str(&l, " allocs ");
  put_u64(&l, a);
  put_str(&l, " frees ");
  put_u64(&l, f);
  put_str(&l, " bytes ");
  put_u64(&l, b);
  put_str(&l, "\n");
  flush_line(fd, &l);
}

static void on_snapshot_signal(int signum) {
  (void)signum;
  int saved_errno = errno;
  if (out_path[0] != '\0') {
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      struct line l = {.len = 0};
      put_str(&l, "snapshot ");
      put_u64(&l, atomic_fetch_add_explicit(&snapshots, 1, memory_order_relaxed) + 1);
      put_str(&l, "\n");
      flush_line(fd, &l);
      uint64_t totals[3] = {0, 0, 0};
      unsigned used = atomic_load_explicit(&slots_used, memory_order_relaxed);
      for (unsigned i = 0; i < used && i < MAX_THREADS; ++i) dump_one(fd, &slots[i], totals);
      if (used > MAX_THREADS) dump_one(fd, &overflow, totals);
      put_str(&l, "total allocs ");
      put_u64(&l, totals[0]);
      put_str(&l, " frees ");
      put_u64(&l, totals[1]);
      put_str(&l, " bytes ");
      put_u64(&l, totals[2]);
      put_str(&l, "\nend\n");
      flush_line(fd, &l);
      close(fd);
      rename(tmp_path, out_path);
    }
  }
  if (trace_per_snapshot > 0) {
    atomic_store_explicit(&trace_left, trace_per_snapshot, memory_order_relaxed);
  }
  errno = saved_errno;
}

__attribute__((constructor)) static void alloc_counter_init(void) {
  main_tid = (int)getpid();
  const char* out = getenv(ALLOC_COUNTER_OUT_ENV);
  if (out != NULL && strlen(out) < sizeof out_path) {
    memcpy(out_path, out, strlen(out) + 1);
    memcpy(tmp_path, out_path, strlen(out_path));
    memcpy(tmp_path + strlen(out_path), ".tmp", 5);
  }
  const char* trace_env = getenv(ALLOC_COUNTER_TRACE_ENV);
  if (trace_env != NULL) trace_per_snapshot = strtol(trace_env, NULL, 10);
  const char* trace_file = getenv(ALLOC_COUNTER_TRACE_FILE_ENV);
  if (trace_per_snapshot > 0 && trace_file != NULL) {
    int fd = open(trace_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) trace_fd = fd;
  }
  if (trace_per_snapshot > 0) {
    /* Load libgcc_s now, not in the middle of the first traced allocation. */
    void* frames[4];
    in_hook = 1;
    backtrace(frames, 4);
    in_hook = 0;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_snapshot_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(ALLOC_COUNTER_SIGNAL, &sa, NULL);
}

/* --- the replacements ----------------------------------------------------- */

void* malloc(size_t size) {
  count_alloc("malloc", size);
  return __libc_malloc(size);
}

void* calloc(size_t n, size_t size) {
  count_alloc("calloc", n * size);
  return __libc_calloc(n, size);
}

void* realloc(void* p, size_t size) {
  if (p != NULL && size == 0) {
    count_free(p);
  } else {
    count_alloc("realloc", size);
  }
  return __libc_realloc(p, size);
}

void free(void* p) {
  count_free(p);
  __libc_free(p);
}

void* memalign(size_t alignment, size_t size) {
  count_alloc("memalign", size);
  return __libc_memalign(alignment, size);
}

void* aligned_alloc(size_t alignment, size_t size) {
  count_alloc("aligned_alloc", size);
  return __libc_memalign(alignment, size);
}

int posix_memalign(void** out, size_t alignment, size_t size) {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  count_alloc("posix_memalign", size);
  void* p = __libc_memalign(alignment, size);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}

void* valloc(size_t size) {
  count_alloc("valloc", size);
  return __libc_valloc(size);
}

void* pvalloc(size_t size) {
  count_alloc("pvalloc", size);
  return __libc_pvalloc(size);
}

/* The protocol of alloc_counter.so, a heap-allocation counter that tests
 * LD_PRELOAD into a process they start (tests/integration/alloc_test.cc).
 *
 * The library replaces malloc, calloc, realloc, free, posix_memalign,
 * aligned_alloc, memalign, valloc and pvalloc (operator new and delete go
 * through malloc and free) and forwards each to glibc's own allocator,
 * counting calls per thread. It starts nothing and prints nothing by itself:
 *
 *   - On ALLOC_COUNTER_SIGNAL it writes a snapshot of its counters to the
 *     file named by $ALLOC_COUNTER_OUT (written to "<path>.tmp", then
 *     renamed, so a reader never sees half a snapshot). The handler only
 *     makes async-signal-safe system calls. sluice never watches this
 *     signal (it handles TERM, INT, HUP and USR1 through libuv).
 *   - With $ALLOC_COUNTER_TRACE=K, every snapshot arms a trace of the next
 *     K allocations made by any thread: for each, a line
 *     "alloc <kind> <size> tid <tid>" and its call stack (backtrace_symbols_fd)
 *     are written to $ALLOC_COUNTER_TRACE_FILE (default: standard error).
 *     Build the traced binary with -g (RelWithDebInfo) and run the addresses
 *     through addr2line for file:line.
 *
 * Snapshot format, one record per line, numbers in decimal:
 *
 *   snapshot <seq>
 *   thread <tid> main <0|1> allocs <n> frees <n> bytes <n>    (one per thread)
 *   total allocs <n> frees <n> bytes <n>
 *   end
 *
 * `allocs` counts every call that may hand out a new block (malloc, calloc,
 * realloc except realloc(p, 0), the aligned family), `bytes` their requested
 * sizes. `main 1` marks the process's initial thread, which in sluice is the
 * event-loop thread. Counters are cumulative since the process started;
 * a test diffs two snapshots.
 */
#ifndef SLUICE_TESTS_SUPPORT_ALLOC_COUNTER_H
#define SLUICE_TESTS_SUPPORT_ALLOC_COUNTER_H

#include <signal.h>

#define ALLOC_COUNTER_SIGNAL SIGUSR2
#define ALLOC_COUNTER_OUT_ENV "ALLOC_COUNTER_OUT"
#define ALLOC_COUNTER_TRACE_ENV "ALLOC_COUNTER_TRACE"
#define ALLOC_COUNTER_TRACE_FILE_ENV "ALLOC_COUNTER_TRACE_FILE"

#endif

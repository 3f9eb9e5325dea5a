# Entry points for people and CI. Each target installs what it needs first.
#   make run    build, start the demo backend, run sluice on config/examples/demo.yaml
#   make test   build and run every test (unit + integration) under ctest
#   make asan   the whole suite under ASan+UBSan        make tsan   threaded tests under TSan
#   make clang  build and test with clang 14            make bench  tests/bench/run.sh
#   make fuzz FUZZ_TARGET=request|response|config|all FUZZ_MINUTES=5 [FUZZ_ARGS=-runs=N]   libFuzzer

JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all deps test-deps build run test asan tsan clang bench clean deb fuzz

all: build

deps:
	@sh packaging/install-deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j$(JOBS)

run: build
	@sh packaging/run-demo.sh build

# The admin status page is checked in a real headless Chromium.
test-deps: deps
	@sh packaging/install-deps.sh --with chromium

test: test-deps build
	@cd build && ctest --output-on-failure -j$(JOBS) --timeout 600

asan: test-deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=asan >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS) --timeout 900

tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_SANITIZE=tsan >/dev/null
	@cmake --build build-tsan -j$(JOBS) --target core_unit_tests proxy_unit_tests proxy_integration_tests
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -R 'core_unit_tests|proxy_unit_tests|proxy_io_threads'

clang: test-deps
	@sh packaging/install-deps.sh --with clang-14
	@CC=clang-14 CXX=clang++-14 cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-clang -j$(JOBS)
	@cd build-clang && ctest --output-on-failure -j$(JOBS) --timeout 600

# libFuzzer targets (tests/fuzz/) under ASan+UBSan; seeds are copied to a
# scratch corpus, crashes land in build-fuzz/fuzz-artifacts/<target>/.
FUZZ_TARGET ?= all
FUZZ_MINUTES ?= 5
FUZZ_ARGS ?=
fuzz: deps
	@sh packaging/install-deps.sh --with "clang-14 libclang-rt-14-dev"
	@CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target request_fuzz response_fuzz config_fuzz
	@sh tests/fuzz/run.sh build-fuzz $(FUZZ_TARGET) $(FUZZ_MINUTES) $(FUZZ_ARGS)

bench: build
	@bash tests/bench/run.sh

clean:
	rm -rf build build-asan build-tsan build-clang build-fuzz

# build/sluice_<version>_<arch>.deb (packaging/cpack.cmake)
deb: build
	@cmake --build build && cd build && cpack -G DEB

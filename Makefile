# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what is missing first (scripts/deps.sh).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test asan tsan demo bench install-check clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DMP_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# The whole suite.
test: build
	cd $(BUILD) && ctest --output-on-failure

# The suite again under AddressSanitizer + UBSan.
asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DMP_WERROR=ON -DMP_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && MP_TEST_TIMEOUT_MULT=4 ctest --output-on-failure

# The thread tests under ThreadSanitizer (it cannot see across processes).
tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -DMP_WERROR=ON -DMP_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j$(JOBS)
	cd $(TSAN_BUILD) && MP_TEST_TIMEOUT_MULT=4 ctest --output-on-failure -L threads

# The tutorial's examples in order, then mpget against a local server.
demo: build
	@scripts/demo.sh $(BUILD)

# Every benchmark with its peers; writes bench/results.md and a chart.
bench: build
	@scripts/deps.sh bench
	@scripts/bench.sh $(BUILD)

# Install to a temporary prefix and build a program against it.
install-check: build
	@scripts/install-check.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)

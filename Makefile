# SPDX-License-Identifier: MIT
# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what is missing first (scripts/deps.sh).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# make install PREFIX=/usr DESTDIR=/tmp/stage
PREFIX ?= /usr/local
DESTDIR ?=

# Quiet unless V=1: no per-file lines, no "Entering directory".
ifeq ($(V),1)
QUIET := -DCMAKE_RULE_MESSAGES=ON -DCMAKE_VERBOSE_MAKEFILE=ON
else
QUIET := -DCMAKE_RULE_MESSAGES=OFF -DCMAKE_VERBOSE_MAKEFILE=OFF
endif
MAKEFLAGS += --no-print-directory
SHELL := bash
.SHELLFLAGS := -o pipefail -ec
configure = cmake -S . -B $(1) -DMP_WERROR=ON $(QUIET) $(2) >/dev/null
ifeq ($(V),1)
compile = cmake --build $(1) -j$(JOBS)
else
compile = cmake --build $(1) -j$(JOBS) | { grep -v '^\[ *[0-9]*%\] Built target' || true; }
endif

FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all fuzz deps build test asan tsan demo bench install uninstall \
	install-check dist deb clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@$(call configure,$(BUILD),$(CMAKE_FLAGS))
	@$(call compile,$(BUILD))

# The whole suite.
test: build
	cd $(BUILD) && ctest --output-on-failure

# The suite again under AddressSanitizer + UBSan.
asan: deps
	@$(call configure,$(ASAN_BUILD),-DMP_SANITIZE=ON)
	@$(call compile,$(ASAN_BUILD))
	cd $(ASAN_BUILD) && MP_TEST_TIMEOUT_MULT=4 ctest --output-on-failure

# The thread tests under ThreadSanitizer (it cannot see across processes).
tsan: deps
	@$(call configure,$(TSAN_BUILD),-DMP_TSAN=ON)
	@$(call compile,$(TSAN_BUILD))
	cd $(TSAN_BUILD) && MP_TEST_TIMEOUT_MULT=4 ctest --output-on-failure -L threads

# The tutorial's examples in order, then mpget against a local server.
demo: build
	@scripts/demo.sh $(BUILD)

# Every benchmark with its peers; writes bench/results.md and a chart.
bench: build
	@scripts/deps.sh bench
	@scripts/bench.sh $(BUILD)

# Headers, libraries, .pc file, CMake package, man pages, mpget and the
# docs under $(DESTDIR)$(PREFIX); `make uninstall` removes what it put.
install: deps
	@$(call configure,$(BUILD),$(CMAKE_FLAGS) -DCMAKE_INSTALL_PREFIX=$(PREFIX))
	@$(call compile,$(BUILD))
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD) >$(BUILD)/install.log || \
		{ cat $(BUILD)/install.log; exit 1; }
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then ldconfig; fi
	@echo "installed under $(DESTDIR)$(PREFIX)"

uninstall:
	@DESTDIR=$(DESTDIR) scripts/uninstall.sh $(BUILD)/install_manifest.txt

# Install to a temporary prefix and a DESTDIR, check the tree, the symbol
# versions and the man links, build programs against it (shared, static).
install-check: build
	@scripts/install-check.sh $(BUILD)

# A release tarball of the tracked files, out/multiproc-VERSION.tar.gz.
dist:
	@scripts/dist.sh out

# The Debian packages, built from that tarball, in out/deb/.
deb: dist
	@scripts/deps.sh deb
	@scripts/deb.sh out

# Each libFuzzer target (the URL list, file names, connection frames and
# handshakes) for FUZZ_SECONDS, starting from the committed seeds.
fuzz:
	@scripts/deps.sh fuzz
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DMP_FUZZ=ON \
		-DMP_BUILD_MPGET=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz-urllist fuzz-names fuzz-conn
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) out

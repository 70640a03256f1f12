# opsh — wraps CMake. `make demo` and `make test` work on a fresh Debian 12 machine.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
OPSH        = $(BUILD)/opsh
PREFIX     ?= /usr/local

# Servers the tests start (nginx) and runuser live in sbin, which a trimmed PATH may lack.
export PATH := $(PATH):/usr/local/sbin:/usr/sbin:/sbin

.PHONY: all deps build demo test test-fast lint asan test-asan fuzz fuzz-build bench install clean

all: build

deps:
	@bash deploy/deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

# The README's first command: the twin (the runbook's platform on loopback), then the daily health check
# against it; its report is the demo. Exit 3 (a check failed) is a report, not a broken demo.
demo: deps build
	$(OPSH) twin up
	$(OPSH) run daily-health-check --env twin || [ $$? -eq 3 ]

# The whole suite: C units and CLI tests under ctest, the busted specs inside opsh,
# then all of it again built with AddressSanitizer + UBSan.
test: deps build lint
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	$(OPSH) test
	$(MAKE) test-asan

lint:
	luacheck -q lua scripts

# The suite's audit lines go to the build tree, not the operator's ~/.local/state/opsh/audit.log.
test test-fast test-asan: export OPSH_AUDIT_LOG = $(CURDIR)/$(BUILD)/tests-audit.log

test-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	$(OPSH) test

$(ASAN_BUILD)/Makefile:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DOPSH_SANITIZE=ON >/dev/null

asan: $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# A small quarantine: ASan's default keeps 256 MB of freed memory, which would hide whether a
# streamed 1 GB upload really runs in little memory. intercept_tls_get_addr=0: up to GCC 13 and
# LLVM 16 the __tls_get_addr interceptor takes a dynamic TLS block (dlopen'd libcurl, libpq,
# OpenSSL) that happens to start 16 bytes into a page for a pre-2.25 glibc header and reads two
# words before it; LeakSanitizer's tracer then dies at exit ("Tracer caught signal 11"), at random.
SANITIZER_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16:intercept_tls_get_addr=0 \
                LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

test-asan: asan
	$(SANITIZER_ENV) ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)
	$(SANITIZER_ENV) $(ASAN_BUILD)/opsh test
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SHORT)

# libFuzzer (clang) harnesses for the JSON and YAML decoders, HTTP response parsing and the
# command line (tests/fuzz). `make fuzz` runs each for FUZZ_SECONDS; make test runs each briefly.
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 300
FUZZ_SHORT   ?= 20
FUZZ_TARGETS  = json yaml http args

$(FUZZ_BUILD)/Makefile:
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DOPSH_FUZZ=ON >/dev/null

fuzz-build: $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))

fuzz: fuzz-build
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: build
	bash bench/run.sh $(OPSH)

install: build
	install -D -m 0755 $(OPSH) $(DESTDIR)$(PREFIX)/bin/opsh
	for m in $(BUILD)/lib/opsh/*.so; do install -D -m 0644 "$$m" $(DESTDIR)$(PREFIX)/lib/opsh/$$(basename "$$m"); done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

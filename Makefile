# credbroker: the two commands of the README.
#   make demo    install what building and running need (no test
#                toolchain), build without the tests, and walk through a
#                real substitution-ready set-up on a scratch SQLite store
#   make check   install what is missing, build with -Werror, run the unit
#                and integration tests, then again under ASan+UBSan, then
#                each libFuzzer target for FUZZ_SECONDS (fuzz-short)
#   make check-pg  every integration suite again on the PostgreSQL store
#   make fuzz-long  each libFuzzer target for FUZZ_LONG_SECONDS with
#                FUZZ_JOBS workers, keeping its corpus in $(FUZZ_BUILD)
BUILD		?= build
ASAN_BUILD	?= build-asan
# One job more than processors: many suites spend part of their time
# waiting on a timer, a Vault or PostgreSQL server or a daemon's start, and
# the extra job keeps the processors busy meanwhile.
JOBS		?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 2) + 1 )))
CTEST_FLAGS	?= --output-on-failure
FUZZ_BUILD	?= build-fuzz
FUZZ_TARGETS	?= fuzz_proto fuzz_template fuzz_token fuzz_claims fuzz_scrub
FUZZ_SECONDS	?= 15
FUZZ_LONG_SECONDS ?= 3600
FUZZ_JOBS	?= 2
FUZZ_FLAGS	?= -timeout=25 -max_len=4096 -print_final_stats=1
# The project's own builds treat warnings as errors (a plain cmake does
# not), and run the Python suites with Debian's python3, which has
# python3-msgpack, python3-cryptography and python3-jwt.
CMAKE_FLAGS	?= -DCB_WERROR=ON -DPython3_EXECUTABLE=/usr/bin/python3

.PHONY: all deps deps-build build build-demo build-asan check check-release
.PHONY: check-asan check-valgrind check-pg demo clean
.PHONY: build-fuzz fuzz-short fuzz-long

all: build

deps:
	@./scripts/install-deps

# What building and running need, without the test toolchain (make demo).
deps-build:
	@./scripts/install-deps --build

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCB_TESTS=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

# The same tree without the tests, which need cmocka and Python modules
# (so no Python3_EXECUTABLE either); a later make build turns them on again.
build-demo: deps-build
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DCB_TESTS=OFF $(filter-out -DPython3_EXECUTABLE=%,$(CMAKE_FLAGS)) \
	    >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCB_SANITIZE=ON \
	    $(CMAKE_FLAGS) >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

# The Vault soak runs 30 s in make check, which exercises every kind of
# renewal (CB_SOAK_SECONDS; its own default is a minute).
check-release: build
	CB_SOAK_SECONDS=$${CB_SOAK_SECONDS:-30} \
	ctest --test-dir $(BUILD) $(CTEST_FLAGS) -j$(JOBS) -LE valgrind

check-asan: build-asan
	CB_SOAK_SECONDS=$${CB_SOAK_SECONDS:-30} \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir $(ASAN_BUILD) $(CTEST_FLAGS) -j$(JOBS) -LE valgrind

# Every integration suite on the PostgreSQL store (CB_TEST_BACKEND): each
# suite starts a private cluster of its own (tests/integration/pgtest.py).
# make check runs only a few of them that way (CB_PG_SUITES in
# tests/CMakeLists.txt, label integration-pg).
check-pg: build
	CB_TEST_BACKEND=postgresql \
	ctest --test-dir $(BUILD) $(CTEST_FLAGS) -j$(JOBS) -L '^integration$$'

check-valgrind: build
	CB_VALGRIND=1 ctest --test-dir $(BUILD) $(CTEST_FLAGS) -j$(JOBS) -L valgrind

# libFuzzer targets (tests/fuzz/) with clang, ASan and UBSan.
build-fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCB_FUZZ=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target $(FUZZ_TARGETS)

# Each target for FUZZ_SECONDS on a scratch copy of its seed corpus
# (tests/fuzz/corpus/); any crash, leak, timeout or broken invariant fails,
# and its reproducer is kept in $(FUZZ_BUILD)/artifacts/.
# CB_FUZZ_KNOWN_BUGS=1 looks past the known bugs of tests/fuzz/crashes/.
fuzz-short: build-fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	    d=$$(mktemp -d); cp -R tests/fuzz/corpus/$$t $$d/corpus; \
	    mkdir $$d/art; echo "fuzz-short: $$t for $(FUZZ_SECONDS)s"; \
	    if ! CB_FUZZ_KNOWN_BUGS=$(CB_FUZZ_KNOWN_BUGS) \
	        $(FUZZ_BUILD)/tests/$$t $(FUZZ_FLAGS) -dict=tests/fuzz/$$t.dict \
	        -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$$d/art/ \
	        $$d/corpus </dev/null >$$d/log 2>&1; then \
		tail -n 60 $$d/log; mkdir -p $(FUZZ_BUILD)/artifacts; \
		cp $$d/art/* $(FUZZ_BUILD)/artifacts/ 2>/dev/null || true; \
		echo "fuzz-short: $$t FAILED; reproducer in" \
		    "$(FUZZ_BUILD)/artifacts/ (replay: $(FUZZ_BUILD)/tests/$$t FILE)"; \
		rm -rf $$d; exit 1; \
	    fi; \
	    grep -E 'executed_units|new_units_added' $$d/log; rm -rf $$d; \
	done

# Long runs: each target for FUZZ_LONG_SECONDS with FUZZ_JOBS workers
# (-fork), crashes collected without stopping; the corpus grows in
# $(FUZZ_BUILD)/corpus/ from run to run.  Fails if anything was found.
fuzz-long: build-fuzz
	@set -e; mkdir -p $(FUZZ_BUILD)/artifacts; \
	before=$$(ls $(FUZZ_BUILD)/artifacts | wc -l); \
	for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    echo "fuzz-long: $$t for $(FUZZ_LONG_SECONDS)s, $(FUZZ_JOBS) workers"; \
	    CB_FUZZ_KNOWN_BUGS=$(CB_FUZZ_KNOWN_BUGS) \
	    $(FUZZ_BUILD)/tests/$$t $(FUZZ_FLAGS) -fork=$(FUZZ_JOBS) \
	        -dict=tests/fuzz/$$t.dict \
	        -ignore_crashes=1 -max_total_time=$(FUZZ_LONG_SECONDS) \
	        -artifact_prefix=$(FUZZ_BUILD)/artifacts/ \
	        $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t \
	        </dev/null >$(FUZZ_BUILD)/fuzz-long-$$t.log 2>&1 || true; \
	    grep -E 'oom/timeout/crash' $(FUZZ_BUILD)/fuzz-long-$$t.log | \
	        tail -n 1; grep -E '^INFO: exiting' \
	        $(FUZZ_BUILD)/fuzz-long-$$t.log || true; \
	done; \
	after=$$(ls $(FUZZ_BUILD)/artifacts | wc -l); \
	if [ $$after -gt $$before ]; then \
	    echo "fuzz-long: $$((after - before)) new finding(s) in" \
		"$(FUZZ_BUILD)/artifacts/"; exit 1; fi

# The valgrind runs and the fuzzers use the machine differently (valgrind's
# suites mostly wait on one slow daemon, libFuzzer spins), so they run side
# by side; each one's output is printed whole when it ends.
check: check-release check-asan
	$(MAKE) --no-print-directory --output-sync=target -j2 \
	    check-valgrind fuzz-short

demo: build-demo
	./scripts/demo $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

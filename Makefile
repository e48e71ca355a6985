# credbroker: the two commands of the README.
#   make demo    install what is missing, build, and walk through a real
#                substitution-ready set-up on a scratch SQLite store
#   make check   install what is missing, build with -Werror, run the unit
#                and integration tests, then again under ASan+UBSan
BUILD		?= build
ASAN_BUILD	?= build-asan
JOBS		?= $(shell nproc 2>/dev/null || echo 2)
CTEST_FLAGS	?= --output-on-failure

.PHONY: all deps build build-asan check check-release check-asan check-valgrind demo clean

all: build

deps:
	@./scripts/install-deps

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCB_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

check-release: build
	ctest --test-dir $(BUILD) $(CTEST_FLAGS) -j$(JOBS) -LE valgrind

check-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir $(ASAN_BUILD) $(CTEST_FLAGS) -j$(JOBS) -LE valgrind

check-valgrind: build
	CB_VALGRIND=1 ctest --test-dir $(BUILD) $(CTEST_FLAGS) -L valgrind

check: check-release check-asan check-valgrind

demo: build
	./scripts/demo $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

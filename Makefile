# cce — build, test and benchmark.  `make run` and `make test` are the two user-facing commands.
# Build output goes to $(BUILD) (default build/). Several builds may coexist: make BUILD=build-x.

BUILD   ?= build
CC      ?= cc
PKGS    := libncurses-dev libopenblas-dev liblapacke-dev libreadline-dev libcjson-dev time tmux
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wvla -Wformat=2
ifdef CI
WARN    += -Werror
endif
CPPFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -Iengine -I/usr/include/x86_64-linux-gnu/openblas-pthread -MMD -MP
ARCHFLAGS ?= -march=native
ALL_CFLAGS = $(CPPFLAGS) $(WARN) $(CFLAGS) $(ARCHFLAGS) -pthread $(EXTRA_CFLAGS)
ENGINE_LIBS := -lopenblas -llapacke -lcjson -lm -lpthread
TUI_LIBS := -lncursesw -lreadline

CCE_DATA ?= ../shared/data
export CCE_DATA

ENGINE_SRC := $(sort $(wildcard engine/*.c engine/formats/*.c))
BATCH_SRC  := $(sort $(wildcard tui/cli*.c tui/cmd_*.c))
TUI_SRC    := $(sort $(filter-out tui/main.c $(BATCH_SRC),$(wildcard tui/*.c)))
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
TUI_TEST_SRC := $(sort $(wildcard tests/tui/test_*.c))

ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
BATCH_OBJ  := $(BATCH_SRC:%.c=$(BUILD)/%.o)
TUI_OBJ    := $(TUI_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TUI_TEST_BIN := $(TUI_TEST_SRC:tests/tui/%.c=$(BUILD)/tests/%)

.PHONY: all deps-check run test test-unit test-e2e test-asan test-valgrind fuzz fuzz-build bench deps clean

all: deps-check $(BUILD)/cce $(BUILD)/cce-batch $(UNIT_BIN) $(TUI_TEST_BIN)

$(BUILD)/%.o: %.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libcce.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The full binary: batch CLI + TUI.
$(BUILD)/cce: $(BUILD)/tui/main.o $(BATCH_OBJ) $(TUI_OBJ) $(BUILD)/libcce.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(TUI_LIBS) $(ENGINE_LIBS)

# The batch CLI alone, linked without curses/readline: proves the engine and CLI need no UI.
$(BUILD)/cce-batch: $(BUILD)/tui/main_batch.o $(BATCH_OBJ) $(BUILD)/libcce.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ENGINE_LIBS)

$(BUILD)/tui/main_batch.o: tui/main.c | deps-check
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DCCE_BATCH_ONLY -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcce.a tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libcce.a $(ENGINE_LIBS)

# Unit tests of the TUI's terminal-free parts link the TUI objects (and so curses/readline).
$(TUI_TEST_BIN): $(BUILD)/tests/%: tests/tui/%.c $(TUI_OBJ) $(BATCH_OBJ) $(BUILD)/libcce.a tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(TUI_OBJ) $(BATCH_OBJ) $(BUILD)/libcce.a $(TUI_LIBS) $(ENGINE_LIBS)

# Install missing Debian packages when root; otherwise print the apt line and stop.
deps-check:
	@missing=""; for p in $(PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || { echo "apt-get install$$missing failed"; exit 1; }; \
	  else echo "missing packages; run: sudo apt-get install$$missing"; exit 1; fi; \
	fi
deps: deps-check

run: all
	$(BUILD)/cce tui

test: all
	OPENBLAS_NUM_THREADS=1 BUILD=$(BUILD) tests/run.sh

bench: all
	OPENBLAS_NUM_THREADS=2 BUILD=$(BUILD) tests/bench.sh

clean:
	rm -rf $(BUILD)

# ---- robustness tiers (issue #4): sanitizers, valgrind, fuzzing --------------------------------
# Each tier builds into its own directory with its own flags by re-invoking this Makefile (CI=
# cleared: -Werror is enforced by the normal gcc build, these builds are for run-time checks), so
# the normal build is never touched. Their extra packages are installed by the same deps-check.
SAN_PKGS      := clang libclang-rt-14-dev
FUZZ_PKGS     := clang libclang-rt-14-dev
VALGRIND_PKGS := valgrind
SAN_CC        ?= clang
ASAN_BUILD    ?= build-asan
VALGRIND_BUILD ?= build-valgrind
FUZZ_BUILD    ?= build-fuzz
FUZZ_SECONDS  ?= 60
SAN_CFLAGS    := -O1 -g -fno-omit-frame-pointer
FUZZ_SRC      := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN      := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/fuzz/%)

# All unit and end-to-end tests with AddressSanitizer + UndefinedBehaviorSanitizer (OpenBLAS
# itself is not instrumented). Any report aborts the program, which run.sh counts as a FAIL.
# -mno-avx512f: clang 14 with address + float-cast-overflow instrumentation miscompiles the
# 16-lane float->int vector conversion of forward.c's exp (NaN logits; each sanitizer alone,
# or AVX2 lanes, compute correctly), so this tier runs the 8-lane path.
test-asan:
	@$(MAKE) --no-print-directory deps-check PKGS="$(SAN_PKGS)"
	$(MAKE) BUILD=$(ASAN_BUILD) CI= CC=$(SAN_CC) CFLAGS="$(SAN_CFLAGS)" ARCHFLAGS="-march=native -mno-avx512f" \
	  EXTRA_CFLAGS="-fsanitize=address,undefined" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  CCE_TEST_SANITIZER=1 OPENBLAS_NUM_THREADS=1 BUILD=$(ASAN_BUILD) tests/run.sh

# Loaders and the batch CLI under valgrind, on the real models and on malformed files. Built
# for baseline x86-64 (valgrind does not decode AVX-512).
test-valgrind:
	@$(MAKE) --no-print-directory deps-check PKGS="$(VALGRIND_PKGS)"
	$(MAKE) BUILD=$(VALGRIND_BUILD) CI= CFLAGS="-O1 -g" ARCHFLAGS= $(VALGRIND_BUILD)/cce-batch
	OPENBLAS_NUM_THREADS=1 BUILD=$(VALGRIND_BUILD) tests/valgrind.sh

# libFuzzer targets (tests/fuzz/fuzz_*.c), FUZZ_SECONDS each, from generated seed corpora.
# The engine is built with -fsanitize=fuzzer-no-link so its code is coverage-instrumented.
fuzz:
	@$(MAKE) --no-print-directory deps-check PKGS="$(FUZZ_PKGS)"
	$(MAKE) BUILD=$(FUZZ_BUILD) CI= CC=clang CFLAGS="$(SAN_CFLAGS)" \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined" fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

# (internal) the fuzz binaries and the seed-corpus generator; call through `make fuzz`.
fuzz-build: deps-check $(FUZZ_BIN) $(BUILD)/fuzz/gen_corpus

$(FUZZ_BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h $(BUILD)/libcce.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -pthread -fsanitize=fuzzer,address,undefined -Itests -o $@ $< \
	  $(BUILD)/libcce.a $(ENGINE_LIBS)

# The generator is plain C (no engine, no sanitizer runtime needed).
$(BUILD)/fuzz/gen_corpus: tests/fuzz/gen_corpus.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) -O1 -g -o $@ $<

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

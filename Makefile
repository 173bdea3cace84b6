# cce — build, test and benchmark.  `make run` and `make test` are the two user-facing commands.
# Build output goes to $(BUILD) (default build/). Several builds may coexist: make BUILD=build-x.

BUILD   ?= build
CC      ?= cc
PKGS    := libncurses-dev libopenblas-dev liblapacke-dev libreadline-dev libcjson-dev
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

ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
BATCH_OBJ  := $(BATCH_SRC:%.c=$(BUILD)/%.o)
TUI_OBJ    := $(TUI_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps-check run test test-unit test-e2e test-asan test-valgrind fuzz bench deps clean

all: deps-check $(BUILD)/cce $(BUILD)/cce-batch $(UNIT_BIN)

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

$(BUILD)/tui/main_batch.o: tui/main.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DCCE_BATCH_ONLY -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcce.a tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libcce.a $(ENGINE_LIBS)

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

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# libfutures - a plain Makefile.
#
#   make                 build/libfutures.a and build/libfutures.so
#   make demo            build and run the gather demo
#   make test            Criterion suites, exported-symbol and C++ header checks,
#                        the header under clang -Weverything, no dependency
#                        cycle between the library's objects
#   make docs-check      every C block of the docs compiles (gcc and clang)
#   make cxx-test        the C++ layer's tests (include/futures.hpp) under
#                        ASan/UBSan and under TSan, its sample and the C++
#                        programs of docs/api.md
#   make check           test + the suites in a DEBUG=1 build and under ASan/UBSan
#                        + TSan and valgrind stress programs + install-test
#                        + man-check + docs-check + mpi-test, one verdict
#                        line per stage
#   make install-test    install into scratch prefixes, then build and run
#                        programs against them with pkg-config and CMake
#   make soak            the long soaks (races, shutdowns, random operations)
#   make man             manual pages from the header's doc comments, in
#                        build/man (one per function, and futures(7))
#   make man-check       install them to a scratch prefix; each must render
#                        with man -l, without a roff warning
#   make install         PREFIX, DESTDIR, LIBDIR, INCLUDEDIR, MANDIR as usual;
#                        the headers (futures.h, futures.hpp), both libraries,
#                        futures.pc, a CMake package and the manual pages
#   make DEBUG=1 ...     error-checking mutexes, lock-held assertions and
#                        reference-count checks
#   make mpi-test        libfutures-mpi's tests under mpirun -np 2 and -np 4,
#                        plain, ASan and TSan (skipped without mpicc)
#   make bench-mpi       MPI ping-pong latency and burst throughput, raw MPI
#                        beside mpi_future()
#
# Where mpicc is found, make also builds libfutures-mpi (include/futures_mpi.h,
# lib/mpi/) and make install installs it; the core never depends on MPI.

VERSION_MAJOR := 0
VERSION_MINOR := 1
VERSION_PATCH := 0
VERSION := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/futures
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

CC ?= cc
CXX ?= c++
CFLAGS ?= -O2 -g
WERROR ?= -Werror
DEBUG ?= 0

# What the code needs, whatever CFLAGS the user passes.
BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra $(WERROR) \
               -Iinclude -DFUT_DEBUG=$(DEBUG) -pthread
LIB_CFLAGS := $(BASE_CFLAGS) -fPIC -fvisibility=hidden

B := build
LIB_SRC := $(wildcard lib/*.c)
LIB_HDR := include/futures.h lib/internal.h lib/base.h lib/pool_internal.h \
           lib/scope_internal.h lib/walk.h
UNIT_SRC := $(wildcard tests/unit/*.c)
UNIT_HDR := $(wildcard tests/unit/*.h)
STRESS_SRC := $(wildcard tests/stress/*.c)
# The MPI samples need mpicc and libfutures-mpi: built by mpi-samples.
SAMPLE_SRC := $(filter-out samples/mpi_%.c,$(wildcard samples/*.c))

STATIC := $(B)/libfutures.a
SONAME := libfutures.so.$(VERSION_MAJOR)
SHARED := $(B)/libfutures.so.$(VERSION)

.PHONY: mpi-lib mpi-samples mpi-test bench-mpi
.PHONY: all test check install uninstall clean samples demo docs bench bench-peers soak \
        criterion unit asan tsan valgrind valgrind-unit exports header-cxx install-test \
        layers debug man man-check header-clang docs-check lsan cxx-test

all: $(STATIC) $(SHARED) $(B)/libfutures.so

# ---------------------------------------------------------------- library --

$(B)/obj/%.o: lib/%.c $(LIB_HDR)
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) $(CFLAGS) -c $< -o $@

LIB_OBJ := $(LIB_SRC:lib/%.c=$(B)/obj/%.o)

# The archive holds one object, every file linked together (ld -r), so a
# static link gets every layer, as the shared library does: the layers wire
# themselves up in constructors (the default executor, the fork handlers),
# which an archive of separate objects would leave out when no symbol of
# theirs is named.
$(B)/libfutures.o: $(LIB_OBJ)
	$(LD) -r -o $@ $^

$(STATIC): $(B)/libfutures.o
	@rm -f $@
	$(AR) rcs $@ $<

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -pthread -Wl,-soname,$(SONAME) $(LDFLAGS) -o $@ $^

$(B)/libfutures.so: $(SHARED)
	ln -sf libfutures.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $@

# -------------------------------------------------------------------- mpi --

# libfutures-mpi: MPI requests as futures, built only where mpicc is found,
# against the core's public API alone. MPICC=none builds without it.
MPICC ?= mpicc
HAVE_MPI := $(shell command -v $(MPICC) >/dev/null 2>&1 && echo 1)
MPI_SRC := $(wildcard lib/mpi/*.c)
MPI_HDR := include/futures_mpi.h include/futures.h lib/mpi/internal.h
MPI_OBJ := $(MPI_SRC:lib/mpi/%.c=$(B)/mpi/obj/%.o)
MPI_STATIC := $(B)/libfutures-mpi.a
MPI_SONAME := libfutures-mpi.so.$(VERSION_MAJOR)
MPI_SHARED := $(B)/libfutures-mpi.so.$(VERSION)
# What mpirun needs on this kind of machine: root in a container is allowed
# to run it, more ranks than cores are fine, shared memory (vader) without
# the single-copy mechanism, which containers often forbid (no ptrace), and
# no ssh, since every rank runs here. A timeout turns a hang into a failure.
MPIRUN_TIMEOUT ?= 120
MPIRUN := timeout -k 5 $(MPIRUN_TIMEOUT) mpirun --oversubscribe \
          $(if $(filter 0,$(shell id -u)),--allow-run-as-root) \
          --mca btl self,vader --mca btl_vader_single_copy_mechanism none \
          --mca plm_rsh_agent false --bind-to none

ifeq ($(HAVE_MPI),1)
all: mpi-lib
endif
mpi-lib: $(MPI_STATIC) $(B)/libfutures-mpi.so

$(B)/mpi/obj/%.o: lib/mpi/%.c $(MPI_HDR)
	@mkdir -p $(@D)
	$(MPICC) $(LIB_CFLAGS) $(CFLAGS) -c $< -o $@

$(MPI_STATIC): $(MPI_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(MPI_SHARED): $(MPI_OBJ) $(B)/libfutures.so
	$(MPICC) -shared -pthread -Wl,-soname,$(MPI_SONAME) $(LDFLAGS) -o $@ \
	    $(MPI_OBJ) -L$(B) -lfutures

$(B)/libfutures-mpi.so: $(MPI_SHARED)
	ln -sf libfutures-mpi.so.$(VERSION) $(B)/$(MPI_SONAME)
	ln -sf $(MPI_SONAME) $@

MPI_SAMPLES := $(B)/samples/mpi_gather $(B)/samples/mpi_farm
$(B)/samples/mpi_%: samples/mpi_%.c samples/sample.h $(MPI_STATIC) $(STATIC) $(MPI_HDR)
	@mkdir -p $(@D)
	$(MPICC) $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS) $< $(MPI_STATIC) $(STATIC) -o $@ -lm

mpi-samples: $(MPI_SAMPLES)

# The tests: one plain program (tests/mpi/mpi_test.c) with libfutures-mpi's
# sources compiled in, so that the sanitizer builds instrument them too, run
# by tests/mpi/run.sh under mpirun -np 2 and -np 4, plain, under ASan+UBSan
# and under TSan, each rank printing a verdict that the script sums.
$(B)/mpi/mpi_test: tests/mpi/mpi_test.c $(MPI_SRC) $(MPI_HDR) $(STATIC)
	@mkdir -p $(@D)
	$(MPICC) $(BASE_CFLAGS) -D_GNU_SOURCE $(CFLAGS) $(LDFLAGS) \
	    tests/mpi/mpi_test.c $(MPI_SRC) $(STATIC) -o $@

MPI_TEST_BIN := $(B)/mpi/mpi_test $(B)/asan/mpi/mpi_test $(B)/tsan/mpi/mpi_test
mpi-test:
ifeq ($(HAVE_MPI),1)
	@$(MAKE) --no-print-directory $(B)/mpi/mpi_test
	@$(MAKE) --no-print-directory B=$(B)/asan CFLAGS="$(ASAN_FLAGS)" \
	    LDFLAGS="-fsanitize=address,undefined" $(B)/asan/mpi/mpi_test
	@$(MAKE) --no-print-directory B=$(B)/tsan CFLAGS="$(TSAN_FLAGS)" \
	    $(B)/tsan/mpi/mpi_test
	@$(MAKE) --no-print-directory mpi-samples
	@MPIRUN='$(MPIRUN)' SAMPLES=$(B)/samples tests/mpi/run.sh $(MPI_TEST_BIN)
else
	@echo "mpi-test: 0 passed, 0 failed (skipped: $(MPICC) not found;" \
	    "apt-get install openmpi-bin libopenmpi-dev)"
endif

# ---------------------------------------------------------------- samples --

$(B)/samples/%: samples/%.c samples/sample.h $(STATIC) include/futures.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(CFLAGS) $(LDFLAGS) $< $(STATIC) -o $@ -rdynamic -lm

# The C++ sample, over include/futures.hpp.
CXX_STD := -std=c++17 -Wall -Wextra $(WERROR) -Iinclude -pthread
$(B)/samples/%: samples/%.cpp include/futures.hpp include/futures.h $(STATIC)
	@mkdir -p $(@D)
	$(CXX) $(CXX_STD) $(CFLAGS) $(LDFLAGS) $< $(STATIC) -o $@

samples: $(SAMPLE_SRC:samples/%.c=$(B)/samples/%) $(B)/samples/gather_cxx

demo: $(B)/samples/gather
	$(B)/samples/gather

# ------------------------------------------------------------------- docs --

# Timelines for the guide, drawn from real runs at DOCS_SCALE and labelled
# in seconds of the unscaled run. The SVGs are committed.
DOCS_SCALE ?= 0.1
TRACES := $(B)/traces
define draw
	FUTURES_TRACE=$(TRACES)/$(1).json $(B)/samples/$(2) --scale $(DOCS_SCALE) $(3) > $(TRACES)/$(1).txt
	python3 tools/trace2svg.py $(TRACES)/$(1).json docs/img/$(1).svg \
	    --scale $(DOCS_SCALE) --title "$(4)"
endef

docs: samples
	@mkdir -p $(TRACES) docs/img
	$(call draw,count_sync,count_sync,,count_sync: three 1 s jobs one after another)
	$(call draw,count_async,count_async,,count_async: three 1 s jobs on a pool of 3 threads)
	$(call draw,count_loop,count_loop,,count_loop: one thread with an event loop and three timers)
	$(call draw,random_add_sync,random_add,--mode sync,random_add: delays 5 + 8 + 2 s one by one)
	$(call draw,random_add_pitfall,random_add,--mode pitfall,random_add: submit and wait one at a time)
	$(call draw,random_add_gather,random_add,--mode gather,random_add: when_all of the 5 + 8 + 2 s jobs)
	$(call draw,crawl,crawl,,crawl: nine pages fetched and handled as they arrive)
	@echo "docs/img: $$(ls docs/img | wc -l) timelines drawn at scale $(DOCS_SCALE)"

# Every C block of README.md and docs/*.md builds: tools/docs_check.py says
# how a block is marked (a program, or a fragment of one) and writes each
# program out; each is compiled with both compilers, strictly, and linked
# against the static library, so every name it uses exists.
DOCS_MD := README.md $(wildcard docs/*.md)
DOCS_CC := gcc clang
DOCS_CFLAGS := -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude
DOCS_OUT := $(B)/docs-check
DOCS_JOBS ?= 2
docs-check: $(STATIC)
	@for cc in $(DOCS_CC); do command -v $$cc >/dev/null || \
	  { echo "docs-check: $$cc missing (apt-get install $$cc)"; exit 1; }; done
	@rm -rf $(DOCS_OUT) && mkdir -p $(DOCS_OUT)
	@python3 tools/docs_check.py $(DOCS_OUT) $(DOCS_MD) > $(DOCS_OUT)/programs
	@for cc in $(DOCS_CC); do sed "s|^|$$cc |" $(DOCS_OUT)/programs; done | \
	  xargs -P $(DOCS_JOBS) -L 1 sh -c 'if $$0 $(DOCS_CFLAGS) "$$1" $(STATIC) \
	    -pthread -o "$${1%.c}-$$0" 2> "$${1%.c}-$$0.err"; then echo "pass $$0 $$1"; \
	    else echo "fail $$0 $$1"; fi' > $(DOCS_OUT)/results
	@grep '^fail' $(DOCS_OUT)/results | sort -k3,3V -k2,2 | while read -r _ cc c; do \
	  echo "== $$cc $$c"; head -n 12 "$${c%.c}-$$cc.err"; done
	@echo "docs-check: $$(grep -c '^pass' $(DOCS_OUT)/results) passed," \
	  "$$(grep -c '^fail' $(DOCS_OUT)/results) failed"
	@! grep -q '^fail' $(DOCS_OUT)/results

# -------------------------------------------------------------------- C++ --

# The C++ layer's tests (tests/cxx, plain C++: they run under TSan, which
# Criterion cannot), each build against a library built with the same
# sanitizer, in the asan and tsan trees the C stages use. The sample and
# every ```cpp block of docs/api.md (each a complete program) are built and
# run under ASan/UBSan too. One verdict line sums the three.
CXX_TEST_SRC := $(wildcard tests/cxx/*.cpp)
CXX_TEST_HDR := $(wildcard tests/cxx/*.hpp) include/futures.hpp include/futures.h
CXX_TIMEOUT ?= 300
$(B)/cxx/tests: $(CXX_TEST_SRC) $(CXX_TEST_HDR) $(STATIC)
	@mkdir -p $(@D)
	$(CXX) $(CXX_STD) $(CFLAGS) $(LDFLAGS) $(CXX_TEST_SRC) $(STATIC) -o $@

$(B)/cxx/docs/stamp: docs/api.md include/futures.hpp include/futures.h $(STATIC)
	@rm -rf $(@D) && mkdir -p $(@D)
	@awk -v out=$(@D) '/^```cpp[ \t]*$$/ { n++; on = 1; next } \
	    on && /^```/ { on = 0; next } \
	    on { print > (out "/api-" n ".cpp") }' docs/api.md
	@for c in $(@D)/*.cpp; do \
	  $(CXX) $(CXX_STD) $(CFLAGS) $(LDFLAGS) $$c $(STATIC) -o $${c%.cpp} || exit 1; done
	@touch $@

CXX_ASAN := $(B)/asan/cxx/tests $(B)/asan/samples/gather_cxx $(B)/asan/cxx/docs/stamp
cxx-test:
	@$(MAKE) --no-print-directory B=$(B)/asan CFLAGS="$(ASAN_FLAGS)" \
	    LDFLAGS="-fsanitize=address,undefined" $(CXX_ASAN)
	@$(MAKE) --no-print-directory B=$(B)/tsan CFLAGS="$(TSAN_FLAGS)" $(B)/tsan/cxx/tests
	@n=0; for san in asan tsan; do \
	  echo "== $$san: $(B)/$$san/cxx/tests"; \
	  ASAN_OPTIONS=detect_leaks=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	      timeout -k 10 $(CXX_TIMEOUT) $(B)/$$san/cxx/tests > $(B)/$$san/cxx/tests.log 2>&1; \
	  rc=$$?; cat $(B)/$$san/cxx/tests.log; \
	  [ $$rc -eq 0 ] || { echo "cxx-test: $$n passed, 1 failed ($$san: exit $$rc)"; exit 1; }; \
	  n=$$((n + $$(sed -n 's/^\([0-9]*\) passed, 0 failed$$/\1/p' $(B)/$$san/cxx/tests.log))); \
	done; \
	echo "== asan: $(B)/asan/samples/gather_cxx --scale 0.1"; \
	ASAN_OPTIONS=detect_leaks=1 $(B)/asan/samples/gather_cxx --scale 0.1 || \
	  { echo "cxx-test: $$n passed, 1 failed (gather_cxx)"; exit 1; }; \
	n=$$((n + 1)); \
	for p in $$(ls $(B)/asan/cxx/docs/*.cpp | sed 's/\.cpp$$//'); do \
	  echo "== asan: $$p (docs/api.md)"; \
	  ASAN_OPTIONS=detect_leaks=1 $$p || { echo "cxx-test: $$n passed, 1 failed ($$p)"; exit 1; }; \
	  n=$$((n + 1)); done; \
	echo "cxx-test: $$n passed, 0 failed (the C++ tests under ASan/UBSan and TSan, gather_cxx, docs/api.md's C++)"

# ------------------------------------------------------------------- man --

# One page per public function and futures(7), an overview, written from the
# header's doc comments; tools/man.py fails if a function has none. The
# pages are dated by the header's last commit, so a rebuild changes nothing.
MAN_DATE ?= $(shell git log -1 --format=%cs -- include/futures.h 2>/dev/null)
MAN_STAMP := $(B)/man/.stamp

$(MAN_STAMP): include/futures.h tools/man.py Makefile
	@rm -rf $(B)/man
	python3 tools/man.py include/futures.h $(B)/man --version $(VERSION) \
	    $(if $(MAN_DATE),--date $(MAN_DATE))
	@touch $@

man: $(MAN_STAMP) $(if $(HAVE_MPI),$(MAN_MPI_STAMP))

# libfutures-mpi's pages and futures_mpi(7), where it is built, apart: only
# install-mpi installs them.
MAN_MPI_DATE ?= $(shell git log -1 --format=%cs -- include/futures_mpi.h 2>/dev/null)
MAN_MPI_STAMP := $(B)/man-mpi/.stamp

$(MAN_MPI_STAMP): include/futures_mpi.h tools/man.py Makefile
	@rm -rf $(B)/man-mpi
	python3 tools/man.py include/futures_mpi.h $(B)/man-mpi --version $(VERSION) \
	    $(if $(MAN_MPI_DATE),--date $(MAN_MPI_DATE))
	@touch $@

# ------------------------------------------------------------------ bench --

BENCH_SRC := $(wildcard bench/*.c)
$(B)/bench/%: bench/%.c bench/common.h $(STATIC) include/futures.h
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -O2 $(LDFLAGS) $< $(STATIC) -o $@

# Every figure the issues ask for, one line each; BENCH_RUNS=n for more runs.
bench: $(BENCH_SRC:bench/%.c=$(B)/bench/%)
	@$(B)/bench/tasks w1 w1s w3 w4 && $(B)/bench/tasks w5
	@$(B)/bench/blocking && $(B)/bench/timers && $(B)/bench/compose && $(B)/bench/scope

# MPI ping-pong latency and burst throughput, raw MPI beside mpi_future()
# (bench/mpi/pingpong.c), on two ranks of this machine.
$(B)/bench/mpi/pingpong: bench/mpi/pingpong.c $(MPI_STATIC) $(STATIC) $(MPI_HDR)
	@mkdir -p $(@D)
	$(MPICC) $(BASE_CFLAGS) -O2 $(LDFLAGS) $< $(MPI_STATIC) $(STATIC) -o $@

bench-mpi:
ifeq ($(HAVE_MPI),1)
	@$(MAKE) --no-print-directory $(B)/bench/mpi/pingpong
	@$(MPIRUN) -np 2 $(B)/bench/mpi/pingpong
else
	@echo "bench-mpi: skipped, $(MPICC) not found"
endif

# libfutures beside GLib, libuv and oneTBB on the same workloads, runs
# interleaved, medians and ratios; installs the peers' Debian packages.
bench-peers: $(B)/bench/tasks
	BUILD=$(B) RUNS=$${RUNS:-5} bash bench/peers/run.sh

# ------------------------------------------------------------------ tests --

# Installs Criterion on a fresh Debian machine (we run as root there).
criterion:
	@echo '#include <criterion/criterion.h>' | $(CC) -E -x c - >/dev/null 2>&1 || \
	  { echo "Criterion missing: installing libcriterion-dev"; \
	    apt-get update -qq && apt-get install -y -qq libcriterion-dev; }

# The suites run the samples too (tests/unit/samples.c), from this tree.
$(B)/tests/unit: $(UNIT_SRC) $(UNIT_HDR) $(STATIC) samples | criterion
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -D_GNU_SOURCE -Ilib -DSAMPLES_DIR='"$(B)/samples"' \
	    $(CFLAGS) $(UNIT_SRC) $(STATIC) -o $@ -rdynamic -lcriterion

# Every test checks that no future outlives it and that no failure went
# unobserved (CheckedTest, helpers.h). A test that hangs fails after
# TEST_TIMEOUT seconds with its name, rather than stalling the run; each
# run's TAP report gives make check its verdict (tools/verdict.sh).
TEST_TIMEOUT ?= 600
CRITERION_RUN = -j2 --timeout $(TEST_TIMEOUT) --tap=$(1).tap
unit: $(B)/tests/unit
	@! grep -n '^Test(' $(UNIT_SRC) || \
	  { echo "declare tests with CheckedTest() (tests/unit/helpers.h)"; exit 1; }
	$(B)/tests/unit $(call CRITERION_RUN,$(B)/unit)
	@tools/verdict.sh unit $(B)/unit.tap

exports: $(SHARED) $(if $(HAVE_MPI),$(MPI_SHARED))
	tests/exports.sh include/futures.h $(SHARED)
ifeq ($(HAVE_MPI),1)
	@tests/exports.sh include/futures_mpi.h $(MPI_SHARED) | sed 's/^exports: /exports-mpi: /'
endif

# futures.h as C++11, and futures.hpp on its own as C++17 under both
# compilers, pedantic: a user's flags must not break on our header.
HPP_CXX := g++ clang++
header-cxx:
	$(CXX) -std=c++11 -Wall -Wextra -Werror -Iinclude -fsyntax-only -x c++ tests/header.cpp
	@for cxx in $(HPP_CXX); do \
	  $$cxx -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -fsyntax-only \
	      -x c++ include/futures.hpp || exit 1; done
	@echo "header-cxx: 3 passed, 0 failed (futures.h compiles as C++11; futures.hpp as C++17 with $(HPP_CXX))"

# The public header under every warning clang has, -Wdocumentation among
# them: its comments are the reference, and the man pages are made from
# them. Compiled on its own and included from a file, with only these off:
#   -Wno-documentation-unknown-command: the comments name parameters as
#     kernel-doc does (@pool, @fn), which Doxygen's syntax, the one clang
#     checks, reads as unknown commands. Declaring each parameter name a
#     command (-fcomment-block-commands) would be a second list to keep.
#   -Wno-unused-macros, for the header compiled on its own only: clang asks
#     that the main file use its macros, and a header defines them for
#     others (FUTURES_H, POOL_DRAIN, the version).
HEADER_CLANG := clang -std=c11 -Weverything -Wdocumentation -Werror \
                -Wno-documentation-unknown-command -Iinclude -fsyntax-only
# mpi.h is MPI's, not ours: included as a system header, so that only our
# own declarations are judged (Open MPI's mpicc names its directories).
MPI_ISYSTEM = $(addprefix -isystem ,$(shell $(MPICC) --showme:incdirs 2>/dev/null))
header-clang:
	@$(HEADER_CLANG) -Wno-unused-macros -x c include/futures.h
	@echo '#include <futures.h>' | $(HEADER_CLANG) -x c -
ifeq ($(HAVE_MPI),1)
	@$(HEADER_CLANG) $(MPI_ISYSTEM) -Wno-unused-macros -x c include/futures_mpi.h
	@echo '#include <futures_mpi.h>' | $(HEADER_CLANG) $(MPI_ISYSTEM) -x c -
	@echo "header-clang: 4 passed, 0 failed (futures.h and futures_mpi.h alone and included, clean under clang -Weverything)"
else
	@echo "header-clang: 2 passed, 0 failed (futures.h alone and included, clean under clang -Weverything)"
endif

# No two library objects depend on each other by symbol (lib/internal.h).
layers: $(LIB_OBJ)
	@python3 tools/layers.py $(LIB_OBJ) > $(B)/layers.txt || \
	  { cat $(B)/layers.txt; exit 1; }
	@tail -1 $(B)/layers.txt
	@echo "layers: $(words $(LIB_OBJ)) passed, 0 failed (objects, none in a dependency cycle)"

test: unit exports header-cxx header-clang layers

# The suites in a debug build: error-checking mutexes, and every function
# whose name ends in _locked asserts that its caller holds the lock.
debug: | criterion
	$(MAKE) --no-print-directory B=$(B)/debug DEBUG=1 $(B)/debug/tests/unit
	$(B)/debug/tests/unit $(call CRITERION_RUN,$(B)/debug/unit)
	@tools/verdict.sh debug $(B)/debug/unit.tap

# The same suites with AddressSanitizer and UBSan, in a tree of their own.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan: | criterion
	$(MAKE) --no-print-directory B=$(B)/asan CFLAGS="$(ASAN_FLAGS)" \
	    LDFLAGS="-fsanitize=address,undefined" $(B)/asan/tests/unit
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
	    $(B)/asan/tests/unit $(call CRITERION_RUN,$(B)/asan/unit)
	@tools/verdict.sh asan $(B)/asan/unit.tap

# LeakSanitizer with no suppression file over a program that ends the
# library with futures_shutdown(): the leak check a user's own suite gets.
lsan:
	@$(MAKE) --no-print-directory B=$(B)/asan CFLAGS="$(ASAN_FLAGS)" \
	    $(B)/asan/stress/clean_exit
	ASAN_OPTIONS=detect_leaks=1 $(B)/asan/stress/clean_exit
	@echo "lsan: 1 passed, 0 failed (clean_exit under LeakSanitizer, no suppressions)"

# Stress programs (plain main, Criterion cannot run under TSan), several runs
# since races hide; STRESS_SCALE=k makes each run k times longer.
STRESS_RUNS ?= 3
STRESS_TIMEOUT ?= 900
TSAN_FLAGS := -O1 -g -fsanitize=thread
STRESS_BIN = $(STRESS_SRC:tests/stress/%.c=$(B)/stress/%)
$(B)/stress/%: tests/stress/%.c $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) -D_GNU_SOURCE -Ilib $(CFLAGS) $< $(STATIC) -o $@

tsan:
	$(MAKE) --no-print-directory B=$(B)/tsan CFLAGS="$(TSAN_FLAGS)" \
	    $(STRESS_SRC:tests/stress/%.c=$(B)/tsan/stress/%)
	@n=0; for i in $$(seq $(STRESS_RUNS)); do \
	  for t in $(STRESS_SRC:tests/stress/%.c=$(B)/tsan/stress/%); do \
	    echo "== tsan $$t (run $$i of $(STRESS_RUNS))"; \
	    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
	        timeout -k 10 $(STRESS_TIMEOUT) $$t || exit 1; n=$$((n + 1)); done; done; \
	  echo "tsan: $$n passed, 0 failed (stress programs x $(STRESS_RUNS) runs)"

# The stress programs, unsanitised, under valgrind's memcheck. Futures are
# calloc()ed and free()d under valgrind (lib/slab.c sees RUNNING_ON_VALGRIND,
# or FUTURES_NO_CACHE where valgrind.h is missing), so it sees their misuse.
valgrind: $(STRESS_SRC:tests/stress/%.c=$(B)/stress/%)
	@for t in $^; do echo "== valgrind $$t"; \
	    STRESS_LIGHT=1 FUTURES_NO_CACHE=1 timeout -k 10 $(STRESS_TIMEOUT) \
	        valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 \
	        --suppressions=tests/valgrind.supp $$t || exit 1; done
	@echo "== valgrind, no suppression file, every leak an error: clean_exit"
	@FUTURES_NO_CACHE=1 valgrind -q --leak-check=full --show-leak-kinds=all \
	    --errors-for-leak-kinds=all --error-exitcode=9 $(B)/stress/clean_exit
	@echo "valgrind: $$(($(words $^) + 1)) passed, 0 failed (stress programs, then clean_exit with no suppressions)"

# The long soaks whose figures the reliability note reports (about 15 minutes
# on 2 cores; make check runs the same programs briefly): every race 1,000,000
# rounds plain and 100,000 under TSan; 1,000 shutdowns of each kind with
# 100,000 tasks pending; 10 million random operations plain, under TSan and
# under ASan. Each program prints its figures.
SOAK_TSAN := races random_soak
soak: $(B)/stress/races $(B)/stress/shutdown_soak $(B)/stress/random_soak
	$(MAKE) --no-print-directory B=$(B)/tsan CFLAGS="$(TSAN_FLAGS)" \
	    $(SOAK_TSAN:%=$(B)/tsan/stress/%)
	$(MAKE) --no-print-directory B=$(B)/asan CFLAGS="$(ASAN_FLAGS)" \
	    $(B)/asan/stress/random_soak
	STRESS_SCALE=100 $(B)/stress/races
	STRESS_SCALE=500 $(B)/stress/shutdown_soak
	STRESS_SCALE=100 $(B)/stress/random_soak
	STRESS_SCALE=10 TSAN_OPTIONS=halt_on_error=1 $(B)/tsan/stress/races
	STRESS_SCALE=100 TSAN_OPTIONS=halt_on_error=1 $(B)/tsan/stress/random_soak
	STRESS_SCALE=100 $(B)/asan/stress/random_soak

# The unit suite under memcheck. Criterion runs each test in a process it
# starts with exec, hence --trace-children; the children the fork tests make
# _exit() with copies of other threads' objects, hence silent after fork.
# Futures are plain calloc()/free() here too (see valgrind above).
# The samples suite is left out: it checks wall-clock ratios, which
# valgrind's slowdown distorts. Any error or leak in any log fails.
VG_UNIT := $(B)/valgrind-unit
valgrind-unit: $(B)/tests/unit
	@rm -rf $(VG_UNIT) && mkdir -p $(VG_UNIT)
	FUTURES_NO_CACHE=1 valgrind -q --trace-children=yes --child-silent-after-fork=yes \
	    --trace-children-skip='/bin/*,/usr/bin/*' --leak-check=full \
	    --show-leak-kinds=definite,indirect,possible \
	    --errors-for-leak-kinds=definite,indirect,possible \
	    --suppressions=tests/valgrind.supp --log-file=$(VG_UNIT)/%p.log \
	    $(B)/tests/unit -j2 --timeout 1800 --tap=$(VG_UNIT)/unit.tap \
	    --filter '!(samples)/*' > $(VG_UNIT)/output 2>&1; \
	  grep -E '^\[(FAIL|----)\]|Synthesis' $(VG_UNIT)/output
	@grep -q 'Failing: 0 | Crashing: 0' $(VG_UNIT)/output
	@if [ -n "$$(find $(VG_UNIT) -name '*.log' -size +0)" ]; then \
	    cat $$(find $(VG_UNIT) -name '*.log' -size +0); exit 1; fi
	@echo "valgrind-unit: $$(ls $(VG_UNIT)/*.log | wc -l) processes, no errors, no leaks"
	@tools/verdict.sh valgrind-unit $(VG_UNIT)/unit.tap

# Installs the way a user and a packager do, then builds and runs programs
# against the result (tests/install/run.sh): a plain install, and one staged
# with DESTDIR that must record no staging path, must work moved elsewhere,
# and must be removed whole by uninstall.
INSTALL_T := $(abspath $(B)/install-test)
STAGED := DESTDIR=$(INSTALL_T)/dest PREFIX=/opt/futures
install-test: all
	@rm -rf $(INSTALL_T) && mkdir -p $(INSTALL_T)
	@echo "== install PREFIX=$(INSTALL_T)/prefix"
	@$(MAKE) -s --no-print-directory install PREFIX=$(INSTALL_T)/prefix
	@echo "== install $(STAGED), copied to $(INSTALL_T)/moved"
	@$(MAKE) -s --no-print-directory install $(STAGED)
	@! grep -rl '$(INSTALL_T)/dest' $(INSTALL_T)/dest || \
	  { echo "install-test: the files above record DESTDIR"; exit 1; }
	@cp -a $(INSTALL_T)/dest/opt/futures $(INSTALL_T)/moved
	@$(MAKE) -s --no-print-directory uninstall $(STAGED)
	@test -z "$$(find $(INSTALL_T)/dest ! -type d)" || \
	  { find $(INSTALL_T)/dest ! -type d; \
	    echo "install-test: uninstall left these"; exit 1; }
	@CC='$(CC)' CXX='$(CXX)' MPICC='$(if $(HAVE_MPI),$(MPICC))' MPIRUN='$(MPIRUN)' \
	    tests/install/run.sh $(INSTALL_T)

# Installs into a scratch prefix, then every page must render with man -l
# and pass groff -ww without a warning, and every public function have a
# page (tests/man.sh). Every directory is named, so that none given on the
# command line sends files outside the scratch prefix.
MC := $(abspath $(B)/man-check)
man-check: all man
	@rm -rf $(MC)
	@$(MAKE) --no-print-directory install DESTDIR= PREFIX=$(MC) LIBDIR=$(MC)/lib \
	    INCLUDEDIR=$(MC)/include PKGCONFIGDIR=$(MC)/lib/pkgconfig MANDIR=$(MC)/share/man \
	    > $(B)/man-check.log 2>&1 || { cat $(B)/man-check.log; exit 1; }
	@tests/man.sh "include/futures.h $(if $(HAVE_MPI),include/futures_mpi.h)" \
	    $(MC)/share/man $(MC)/rendered

# Every stage quietly, one verdict line each, the sum and the duration last
# (tools/check.sh); each stage's output is kept in $(B)/check/STAGE.log.
CHECK_STAGES := unit exports header-cxx header-clang layers docs-check debug \
                asan lsan tsan cxx-test valgrind valgrind-unit mpi-test \
                install-test man-check
check:
	@MAKE='$(MAKE)' tools/check.sh $(B) $(CHECK_STAGES)

# ---------------------------------------------------------------- install --

# The CMake package finds the library and the header from where it lies,
# through relative paths worked out here, so that it records no prefix; its
# version file turns away a program built for the other pointer size.
SIZEOF_VOID_P = $$(echo __SIZEOF_POINTER__ | $(CC) $(CFLAGS) -E -P -x c -)
relpath = $$(realpath -m -s --relative-to='$(1)' '$(2)')
install: all man
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR) \
	    $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/futures.h $(DESTDIR)$(INCLUDEDIR)/futures.h
	install -m 644 include/futures.hpp $(DESTDIR)$(INCLUDEDIR)/futures.hpp
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libfutures.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libfutures.so.$(VERSION)
	ln -sf libfutures.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libfutures.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    futures.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/futures.pc
	sed -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
	    -e "s|@CMAKEDIR_TO_LIBDIR@|$(call relpath,$(CMAKEDIR),$(LIBDIR))|" \
	    -e "s|@CMAKEDIR_TO_INCLUDEDIR@|$(call relpath,$(CMAKEDIR),$(INCLUDEDIR))|" \
	    cmake/futuresConfig.cmake.in \
	    > $(DESTDIR)$(CMAKEDIR)/futuresConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
	    -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' \
	    -e "s|@SIZEOF_VOID_P@|$(SIZEOF_VOID_P)|" \
	    cmake/futuresConfigVersion.cmake.in \
	    > $(DESTDIR)$(CMAKEDIR)/futuresConfigVersion.cmake
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/futures.pc \
	    $(DESTDIR)$(CMAKEDIR)/futuresConfig.cmake \
	    $(DESTDIR)$(CMAKEDIR)/futuresConfigVersion.cmake
	install -m 644 $(B)/man/man3/*.3 $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(B)/man/man7/futures.7 $(DESTDIR)$(MANDIR)/man7

# libfutures-mpi, where mpicc was found: its header, both libraries,
# futures-mpi.pc (requiring MPI's own pkg-config package where there is
# one) and the CMake package's mpi component.
MPI_PC := $(shell pkg-config --exists mpi-c 2>/dev/null && echo mpi-c)
ifeq ($(HAVE_MPI),1)
install: install-mpi
uninstall: uninstall-mpi
endif
.PHONY: install-mpi uninstall-mpi
install-mpi: mpi-lib $(MAN_MPI_STAMP)
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(CMAKEDIR) \
	    $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 $(B)/man-mpi/man3/*.3 $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(B)/man-mpi/man7/futures_mpi.7 $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/futures_mpi.h $(DESTDIR)$(INCLUDEDIR)/futures_mpi.h
	install -m 644 $(MPI_STATIC) $(DESTDIR)$(LIBDIR)/libfutures-mpi.a
	install -m 755 $(MPI_SHARED) $(DESTDIR)$(LIBDIR)/libfutures-mpi.so.$(VERSION)
	ln -sf libfutures-mpi.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(MPI_SONAME)
	ln -sf $(MPI_SONAME) $(DESTDIR)$(LIBDIR)/libfutures-mpi.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's| *@MPI_PC@|$(if $(MPI_PC), $(MPI_PC))|' \
	    futures-mpi.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/futures-mpi.pc
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
	    cmake/futures-mpi.cmake.in > $(DESTDIR)$(CMAKEDIR)/futures-mpi.cmake
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/futures-mpi.pc \
	    $(DESTDIR)$(CMAKEDIR)/futures-mpi.cmake

uninstall-mpi:
	rm -f $(DESTDIR)$(INCLUDEDIR)/futures_mpi.h $(DESTDIR)$(LIBDIR)/libfutures-mpi.a \
	      $(DESTDIR)$(LIBDIR)/libfutures-mpi.so.$(VERSION) \
	      $(DESTDIR)$(LIBDIR)/$(MPI_SONAME) $(DESTDIR)$(LIBDIR)/libfutures-mpi.so \
	      $(DESTDIR)$(PKGCONFIGDIR)/futures-mpi.pc $(DESTDIR)$(CMAKEDIR)/futures-mpi.cmake
	@for p in $$(python3 tools/man.py include/futures_mpi.h --list); do \
	  rm -f "$(DESTDIR)$(MANDIR)/$$p"; done

# Removes what install wrote. Of the directories, only the CMake package's
# own, which nothing else uses; of the manual pages, those this header
# makes (tools/man.py --list) and no other: man3 and man7 are shared.
uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/futures.h $(DESTDIR)$(INCLUDEDIR)/futures.hpp \
	      $(DESTDIR)$(LIBDIR)/libfutures.a \
	      $(DESTDIR)$(LIBDIR)/libfutures.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libfutures.so $(DESTDIR)$(PKGCONFIGDIR)/futures.pc \
	      $(DESTDIR)$(CMAKEDIR)/futuresConfig.cmake \
	      $(DESTDIR)$(CMAKEDIR)/futuresConfigVersion.cmake
	rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null || true
	@pages=$$(python3 tools/man.py include/futures.h --list) && \
	  echo "rm -f $(DESTDIR)$(MANDIR)/{man3,man7}/... ($$(echo "$$pages" | wc -l) pages)" && \
	  for p in $$pages; do rm -f "$(DESTDIR)$(MANDIR)/$$p"; done

clean:
	rm -rf $(B)

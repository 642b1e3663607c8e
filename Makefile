# cored — one Makefile.
#   make              builds ./cored and build/libcored.a (installs missing Debian packages first)
#   make test         builds and runs every test (C unit tests + PyTorch parity)
#   make SANITIZE=1 test   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make demo         the whole protocol on real photographs and simulated forgeries
#   make bench        speed of cored next to PyTorch on this machine
#   make faces-model  fetches (npm, pinned, checked) and converts the face detector's weights
#   make deps         only installs the Debian packages the build needs
#   make MPI=1        with Open MPI (mpirun -np N cored train ...; docs/distributed.md); the
#                     default detects it (pkg-config ompi-c), MPI=0 builds without it

CC      ?= cc
PYTHON  ?= /usr/bin/python3
BUILD   ?= build

CFLAGS  ?= -O2
CFLAGS  += -std=c11 -Wall -Wextra -Wno-missing-field-initializers -fopenmp -D_DEFAULT_SOURCE
CPPFLAGS += -Iinclude -Isrc -I/usr/include/cjson -I/usr/include/cairo -MMD -MP
# OpenBLAS built on OpenMP (Debian's libopenblas0-openmp, linked by path with an rpath so
# the system default stays as it is): BLAS then runs on cored's OpenMP threads instead of
# a second thread pool that fights them for the cores.
BLAS_DIR ?= /usr/lib/$(shell $(CC) -print-multiarch)/openblas-openmp
BLAS_LIBS ?= -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas
# FFmpeg's libraries (src/media): pkg-config's flags, or Debian's names where it does not
# answer. Evaluated once, when a rule first needs them: after `deps` has installed them.
AV_PKGS := libavformat libavcodec libswscale libavutil
AV_CFLAGS = $(eval AV_CFLAGS := $$(shell pkg-config --cflags $(AV_PKGS) 2>/dev/null))$(AV_CFLAGS)
AV_LIBS = $(eval AV_LIBS := $$(shell pkg-config --libs $(AV_PKGS) 2>/dev/null || echo -lavformat -lavcodec -lswscale -lavutil))$(AV_LIBS)
CPPFLAGS += $(AV_CFLAGS)
LDLIBS  += $(BLAS_LIBS) -lcjson -lcairo -lpng -ljpeg $(AV_LIBS) -lm
LDFLAGS += -fopenmp

# MPI: 1 = with Open MPI (an error when it is missing), 0 = without, default: detected.
# Only src/dist/dist.c differs (CORED_MPI); the stamp rebuilds it when the choice changes.
MPI ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || echo MPI_MISSING)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null)
ifeq ($(MPI_CFLAGS),MPI_MISSING)
$(error MPI=1 but Open MPI is not installed: make deps-mpi (Debian: libopenmpi-dev openmpi-bin))
endif
LDLIBS  += $(MPI_LIBS)
endif

ifeq ($(SANITIZE),1)
BUILD   := build-san
CFLAGS  += -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
export LSAN_OPTIONS = suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
endif

# The kernels (src/ops) may fuse a*b+c into one FMA where the CPU has it (their AVX2 + FMA
# clones, see src/ops/simd.h; -std=c11 alone forbids that contraction), and may evaluate
# both arms of a float select so that such loops vectorise (cored never enables FP traps).
# Not -ffast-math: NaN, infinity and signed zeros keep their IEEE meaning.
$(BUILD)/src/ops/%.o: CFLAGS += -ffp-contract=fast -fno-trapping-math

BIN      := $(if $(filter 1,$(SANITIZE)),$(BUILD)/cored,cored)
LIB_SRC  := $(sort $(wildcard src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_LIB := tests/harness.c tests/ref_ops.c tests/video_writer.c

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_LIB:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libcored.a
# The face detector's weights (make faces-model) and the tool that runs it on images.
FACES_DIR   ?= build/faces
FACES_MODEL := $(FACES_DIR)/ssd_mobilenetv1_face.safetensors
FACES_TOOL  := $(BUILD)/faces_tool
VIDEO_TOOL  := $(BUILD)/tests/tool_video
BENCH_VIDEO := $(BUILD)/bench_video
BENCH_GEMM  := $(BUILD)/bench_gemm
BENCH_BN    := $(BUILD)/bench_bn

.PHONY: all deps deps-test deps-fuzz deps-mpi test-mpi test test-c test-parity test-slow demo bench bench-gemm bench-bn fixtures faces-model face-eval bench-faces fuzz fuzz-run fuzz-long clean
all: $(BIN) $(LIB)

deps:
	@tools/deps.sh build
deps-test:
	@tools/deps.sh test
deps-fuzz:
	@tools/deps.sh fuzz
deps-mpi:
	@tools/deps.sh mpi

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/mpi.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo "MPI=$(MPI) $(MPI_CFLAGS)" | cmp -s - $@ || echo "MPI=$(MPI) $(MPI_CFLAGS)" > $@
$(BUILD)/src/dist/dist.o: CPPFLAGS += $(if $(filter 1,$(MPI)),-DCORED_MPI $(MPI_CFLAGS))
$(BUILD)/src/dist/dist.o: $(BUILD)/mpi.stamp
.PHONY: FORCE
FORCE:

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $< $(TEST_OBJ) $(LIB) $(LDLIBS) -o $@

# C unit tests first (fast, no Python), then the PyTorch parity tests on the cored binary,
# then the MPI tests (mpirun -np 2 and 3 against one process; skipped without Open MPI).
test: test-c test-parity test-mpi

test-mpi: $(BIN)
	@CORED=./$(BIN) CORED_MPI_BUILT=$(MPI) $(PYTHON) tests/mpi_train.py

# The bits of a training step must not depend on the thread count on any path of cored's
# SGEMM (scalar; AVX2 + FMA, the Zen 3 path; AVX-512, the Zen 4 path, where the CPU has it):
# the invariance tests run again on each (tests/cli_portable.py checks that the paths agree
# with each other), and once on OpenBLAS's AVX2 kernel (CORED_GEMM=openblas, kept for
# comparisons), whose shape-only cut must keep it thread-invariant too.
INVARIANCE_TESTS := test_gemm,test_thread_invariance,test_folded_inference
GEMM_PATHS := scalar avx2 $(if $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo y),avx512)

test-c: $(TEST_BIN) | deps
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; $$t; done
	@set -e; for p in $(GEMM_PATHS) openblas; do for t in $(BUILD)/tests/test_ops $(BUILD)/tests/test_model; do \
	  echo "== $$t ($$p: $(INVARIANCE_TESTS))"; \
	  if [ $$p = openblas ]; then env="CORED_GEMM=openblas OPENBLAS_CORETYPE=Haswell"; else env="CORED_SGEMM_PATH=$$p"; fi; \
	  env $$env CORED_TEST_ONLY=$(INVARIANCE_TESTS) $$t; done; done

test-parity: $(BIN) $(FACES_TOOL) $(VIDEO_TOOL) | deps-test
	@set -e; for t in tests/parity_*.py tests/cli_*.py; do echo "== $$t"; CORED=./$(BIN) FACES_TOOL=./$(FACES_TOOL) VIDEO_TOOL=./$(VIDEO_TOOL) $(PYTHON) $$t; done

# Test videos from photographs with a moving crop (tests/cli_faces.py), with the encoder
# of tests/test_media_video.c (tests/video_writer.c).
$(VIDEO_TOOL): $(BUILD)/tests/tool_video.o $(BUILD)/tests/video_writer.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Longer end-to-end checks (minutes): CI runs them after `make test`.
test-slow: $(BIN) | deps-test
	@set -e; for t in tests/slow_*.py; do echo "== $$t"; CORED=./$(BIN) $(PYTHON) $$t; done

# The face detector (docs/faces.md): SSD-MobileNetV1 from the npm package
# @vladmandic/face-api, fetched once into build/faces/cache (tools/fetch_faces.sh: pinned
# version, SHA-256 checked) and converted to safetensors; faces_tool runs it on images.
$(FACES_TOOL): $(BUILD)/tools/faces_tool.o $(LIB)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(FACES_MODEL): tools/fetch_faces.sh tools/face_convert.py | deps-test
	tools/fetch_faces.sh $(FACES_DIR)/cache >/dev/null
	$(PYTHON) tools/face_convert.py $(FACES_DIR)/cache/face-api-1.7.15 $@

faces-model: $(FACES_MODEL)

# Recall, false positives and speed on dlib's annotated photographs (docs/faces.md).
face-eval: $(FACES_TOOL) $(FACES_MODEL) | deps-test
	$(PYTHON) tools/face_eval.py --tool $(FACES_TOOL) --model $(FACES_MODEL) --threads $(or $(THREADS),2)

# Real photographs from Debian packages, the simulated continual benchmark, the protocol
# with TL, DL, TG and CoReD, the report (tools/demo.sh; data cached in build/demo).
demo: $(BIN) | deps
	tools/demo.sh ./$(BIN)

# PyTorch / scikit-learn reference values of the method's loss terms and metrics.
fixtures: | deps-test
	$(PYTHON) tools/make_method_fixtures.py tests/fixtures/method.safetensors

bench: $(BIN) | deps-test
	CORED=./$(BIN) $(PYTHON) tools/bench.py

# The face pipeline (decode + detect + crop) on a 720p H.264 video, cored next to face-api's
# own JavaScript under Node with the ffmpeg command decoding (docs/faces.md, README "Speed").
$(BENCH_VIDEO): $(BUILD)/tools/bench_video.o $(BUILD)/tests/video_writer.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Xception's pointwise GEMMs: OpenBLAS next to cored's own packed SGEMM (src/ops/sgemm_own.c)
# on its AVX-512 and AVX2 paths, under OpenBLAS's AVX-512 and AVX2 kernels (tools/bench_gemm.c).
$(BENCH_GEMM): $(BUILD)/tools/bench_gemm.o $(LIB)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

bench-gemm: $(BENCH_GEMM)
	@set -e; for k in $(if $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo y),SkylakeX) Haswell; do \
	  OPENBLAS_CORETYPE=$$k $(BENCH_GEMM) $(or $(REPEATS),3) $(or $(THREADS),2); done

# BatchNorm's training passes on the models' shapes, against the bandwidth of a triad
# (tools/bench_bn.c; docs/engine.md).
$(BENCH_BN): $(BUILD)/tools/bench_bn.o $(LIB)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

bench-bn: $(BENCH_BN)
	$(BENCH_BN) $(or $(REPEATS),9) $(or $(THREADS),2)

bench-faces: $(BIN) $(BENCH_VIDEO) $(FACES_MODEL) | deps-test
	$(PYTHON) tools/bench_faces.py --cored ./$(BIN) --video-tool $(BENCH_VIDEO) --model $(FACES_MODEL) \
	  --threads $(or $(THREADS),2)

# libFuzzer targets (clang 14): fuzz/fuzz_<name>.c, seed corpus fuzz/corpus/<name>/,
# crash regressions fuzz/regress/<name>/ (replayed first by fuzz-run). fuzz-run is CI's
# short run; fuzz-long the nightly one, 10 minutes per target, ending with libFuzzer's
# statistics (executions per second, edges covered; docs/reliability.md lists them).
FUZZ_SECONDS ?= 20
FUZZ_STATS   ?= 0
FUZZ_CC      := clang
FUZZ_FLAGS   := -std=c11 -O1 -g -fopenmp -D_DEFAULT_SOURCE -Wall -Wextra -Wno-pass-failed -fsanitize=address,undefined
FUZZ_SRC     := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build-fuzz/%.o)

build-fuzz/%.o: %.c | deps-fuzz
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build-fuzz/fuzz_%: build-fuzz/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $^ $(LDLIBS) -o $@

fuzz: $(FUZZ_BIN)

fuzz-run: $(FUZZ_BIN)
	@set -e; for b in $(FUZZ_BIN); do n=$${b#build-fuzz/fuzz_}; \
	  if [ -d fuzz/regress/$$n ] && [ -n "$$(ls fuzz/regress/$$n)" ]; then \
	    echo "== $$b: regressions"; $$b fuzz/regress/$$n/*; fi; \
	  mkdir -p build-fuzz/corpus/$$n; echo "== $$b: $(FUZZ_SECONDS) s"; \
	  $$b -max_total_time=$(FUZZ_SECONDS) -print_final_stats=$(FUZZ_STATS) build-fuzz/corpus/$$n fuzz/corpus/$$n; done

fuzz-long: $(FUZZ_BIN)
	@$(MAKE) --no-print-directory fuzz-run FUZZ_SECONDS=600 FUZZ_STATS=1

clean:
	rm -rf build build-san build-fuzz cored

-include $(BUILD)/tools/faces_tool.d $(BUILD)/tools/bench_video.d $(BUILD)/tools/bench_gemm.d $(BUILD)/tools/bench_bn.d $(BUILD)/tests/tool_video.d $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_SRC:%.c=build-fuzz/%.d) $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(TEST_BIN:=.d)

# The two commands of the README: `make demo` and `make test`. Both run the set-up first.
SWIFT ?= swift

# scripts/setup.sh writes the engine it chose (cpu: Debian's libtorch; cuda: PyPI's CUDA wheel in
# .deps/torch-cuda) to .deps/libtorch.env. The CUDA variant builds into its own .build-cuda so that
# the two never share build products.
include .deps/libtorch.env
ifeq ($(MEDSEG_ENGINE),cuda)
BUILD_PATH := .build-cuda
export LIBTORCH
export LD_LIBRARY_PATH := $(MEDSEG_LD_LIBRARY_PATH)$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))
export MEDSEG_ENGINE_REASON
else
BUILD_PATH := .build
endif
SWIFT_BUILD_FLAGS := --build-path $(BUILD_PATH)
MEDSEG := $(BUILD_PATH)/release/medseg

.PHONY: setup build demo test bench gpu-bundle gpu-bundle-check gpu-check clean

# Make remakes the included .deps/libtorch.env first: the set-up runs before anything else.
setup: .deps/libtorch.env

# `make demo` and `make build` need only what building and running medseg needs (--runtime); any other
# goal (test, bench, the GPU bundle) also installs the references and tools the tests use.
SETUP_FLAGS := $(if $(filter-out demo build setup,$(MAKECMDGOALS)),,--runtime)

.deps/libtorch.env: FORCE
	@bash scripts/setup.sh $(SETUP_FLAGS)

FORCE:

build: setup
	$(SWIFT) build $(SWIFT_BUILD_FLAGS) -c release --product medseg

DEMO := runs/demo

# Synthetic 2D data, a U-Net trained for about a minute on the CPU, validation, prediction of the
# held-out test images with overlays, and their evaluation.
demo: build
	$(MEDSEG) doctor
	rm -rf $(DEMO)
	$(MEDSEG) data synth --dim 2 --cases 40 --test-cases 10 --out $(DEMO)/data
	$(MEDSEG) data check $(DEMO)/data
	$(MEDSEG) train --dataset $(DEMO)/data --preset synthetic-2d --out $(DEMO)/run
	$(MEDSEG) predict --run $(DEMO)/run --input $(DEMO)/data/imagesTs --out $(DEMO)/predictions --overlay
	$(MEDSEG) evaluate --pred $(DEMO)/predictions --ref $(DEMO)/data/labelsTs
	@echo
	@echo "demo outputs:"
	@echo "  data set         $(DEMO)/data"
	@echo "  training run     $(DEMO)/run  (log.txt, training_log.csv, progress.png, TensorBoard events, checkpoints, validation/summary.json)"
	@echo "  predictions      $(DEMO)/predictions  (masks, *_overlay.png, summary.json)"

test: setup
	$(SWIFT) build $(SWIFT_BUILD_FLAGS) --build-tests
	OMP_WAIT_POLICY=PASSIVE $(SWIFT) test $(SWIFT_BUILD_FLAGS) --skip-build

bench: build
	bash bench/unet.sh

# The GPU half, for GPU machines without network or Swift: `make gpu-bundle` builds medseg and the
# test runner for the CUDA engine on this (CPU) machine into one archive (.gpu-bundle/, <= 60 MiB);
# `make gpu-bundle-check` runs it here on the CPU; a GPU machine runs `make gpu-check` (or
# scripts/gpu-check.sh --bundle ...) with it, and writes runs/gpu-check/report.md.
GPU_BUNDLE := .gpu-bundle/medseg-gpu-bundle.tar.xz

gpu-bundle:
	bash scripts/gpu-bundle.sh

gpu-bundle-check: gpu-bundle
	bash scripts/gpu-bundle-check.sh $(GPU_BUNDLE)

gpu-check:
	bash scripts/gpu-check.sh --bundle $(GPU_BUNDLE) --report runs/gpu-check

clean:
	rm -rf .build .build-cuda .build-gpu-bundle .build-gpu-tests .gpu-bundle

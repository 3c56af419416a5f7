# The two commands of the README: `make demo` and `make test`. Both run the set-up first.
SWIFT ?= swift
MEDSEG := .build/release/medseg

.PHONY: setup build demo test bench clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product medseg

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
	$(SWIFT) build --build-tests
	OMP_WAIT_POLICY=PASSIVE $(SWIFT) test --skip-build

bench: build
	bash bench/unet.sh

clean:
	rm -rf .build

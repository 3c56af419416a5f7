# The two commands of the README: `make demo` and `make test`. Both run the set-up first.
SWIFT ?= swift
MEDSEG := .build/release/medseg

.PHONY: setup build demo test bench clean

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build -c release --product medseg

demo: build
	$(MEDSEG) doctor

test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

bench: build
	bash bench/unet.sh

clean:
	rm -rf .build

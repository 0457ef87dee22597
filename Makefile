# The two commands of the quickstart:
#   make demo   fetch the models, build, and serve the demo shop on http://127.0.0.1:8080
#   make test   fetch the models, then formatting, lints and the whole test suite
#
# Builds use the dev profile with optimised dependencies (see Cargo.toml), so `make demo` and
# `make test` share one build. Two jobs: the machines we target have two cores.

CARGO ?= cargo
export CARGO_BUILD_JOBS ?= 2

.PHONY: demo test setup serve fmt lint unit

demo: setup serve

setup:
	bash scripts/setup.sh

serve:
	$(CARGO) run -p fenliu-server --bin fenliu -- serve

test: setup fmt lint unit

fmt:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

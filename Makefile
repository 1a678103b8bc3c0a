# pyrun's short verbs. Everything runs as root on a Debian/Ubuntu host.
#   make run    build everything, open a shell in the embedded busybox image
#   make test   run the whole test suite (unit + root integration tests)
PYTHON  ?= python3
CC      ?= gcc
VENV    := .venv
BIN     := $(VENV)/bin
INIT    := pyrun/libexec/pyrun-init
CORE    := pyrun/.core-built
# Debian packages the build, the tests and the benchmarks need.
APT_PACKAGES := gcc make libc6-dev python3-dev python3-venv busybox-static runc util-linux \
	docker-registry skopeo umoci apache2-utils debootstrap

.PHONY: all deps install import-busybox run test test-unit test-vm lint rootfs bench bench-pull \
	bench-vm \
	clean

all: install

# Install missing Debian packages (apt-get update only when something is missing).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(BIN)/pip:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel cffi

# The C core is compiled by cffi when the package is (re)installed.
$(CORE): $(BIN)/pip pyproject.toml setup.py csrc/pyrun_core.c csrc/pyrun_core.h csrc/build_ffi.py
	$(BIN)/pip install -q --no-build-isolation --config-settings editable_mode=compat -e '.[dev]'
	touch $@

# Byte-compile pyrun: with PYTHONDONTWRITEBYTECODE set (as on some hosts)
# every start would otherwise compile every module again (~20 ms).
PY_SOURCES := $(wildcard pyrun/*.py pyrun/image/*.py)
COMPILED := pyrun/.compiled
$(COMPILED): $(CORE) $(PY_SOURCES)
	$(BIN)/python -m compileall -q pyrun
	touch $@

# pyrun-init is static: it runs as PID 1 inside containers with any libc.
$(INIT): csrc/pyrun_init.c
	mkdir -p $(dir $@)
	$(CC) -std=gnu11 -static -Os -Wall -Wextra -Werror -o $@ $<

rootfs:
	$(MAKE) -C rootfs

# The embedded busybox as a real image in the default store (pyrun import),
# again whenever the rootfs was rebuilt or the image is gone from the store.
BUSYBOX_CHANGES := -c 'CMD ["sh"]' -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
import-busybox: rootfs $(CORE)
	@if [ rootfs/build/busybox/config.json -nt rootfs/build/.imported ] || \
	    ! $(BIN)/pyrun image inspect busybox:latest >/dev/null 2>&1; then \
		echo "importing busybox into the store"; \
		tar -C rootfs/build/busybox/rootfs -c . | \
			$(BIN)/pyrun import $(BUSYBOX_CHANGES) - busybox:latest && \
		$(BIN)/pyrun image prune >/dev/null && touch rootfs/build/.imported; \
	fi

install: deps $(CORE) $(COMPILED) $(INIT) rootfs import-busybox
	ln -sf $(CURDIR)/$(BIN)/pyrun /usr/local/bin/pyrun

run: install
	$(BIN)/pyrun run --rm -it busybox sh

test: install
	$(BIN)/pytest

# The cgroup v2 tests, in a VM booted with virtme-ng (see tests/vm/run-vm.sh).
test-vm: install
	bash tests/vm/run-vm.sh

test-unit: $(CORE)
	$(BIN)/pytest tests/unit

lint: $(CORE)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/startup.py

bench-pull: install
	$(BIN)/python bench/pull.py

bench-vm: install
	bash tests/vm/run-vm.sh --exec '$(CURDIR)/$(BIN)/python bench/cgroup_cost.py' 

clean:
	$(MAKE) -C rootfs clean
	rm -rf $(VENV) build *.egg-info $(INIT) $(CORE) $(COMPILED) pyrun/_core.*so

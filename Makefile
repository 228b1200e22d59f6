# migcheck: every target installs what it needs, so each works alone on a fresh
# Debian machine as root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := libvirt-daemon-system libvirt-clients libvirt-dev pkg-config \
	qemu-system-x86 qemu-utils openssh-server openssh-client iproute2 \
	python3-venv python3-dev gcc procps util-linux debootstrap openssl \
	busybox-static ovmf swtpm swtpm-tools bindfs
PYTEST_ARGS ?=

.PHONY: install apt venv test demo bench lab-up lab-down fuzz clean bench-audit bench-fleet

install: apt venv
	@# byte-compile migcheck: with PYTHONDONTWRITEBYTECODE set, Python would otherwise recompile
	@# every module on every run (~0.1 s of each `migcheck SRC DST VM`); up-to-date files are skipped
	@$(PY) -m compileall -q migcheck >/dev/null

# apt-get only when a package is missing: keeps repeated runs fast.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

test: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: install
	$(PY) -m tests.lab.demo

# benchmarks, not tests: ratios from one run on the lab (see README, Speed and Fleet audit)
bench: install
	$(PY) -m tests.bench.bench_check
	$(PY) -m tests.bench.bench_audit $(BENCH_ARGS)
	$(PY) -m tests.bench.bench_fleet $(FLEET_ARGS)

# a long fuzzing run of the parsers (the short one is part of make test)
fuzz: install
	MIGCHECK_FUZZ=long $(VENV)/bin/pytest tests/fuzz -q

lab-up: install
	$(PY) -m tests.lab up

lab-down:
	$(PY) -m tests.lab down

clean:
	-$(PY) -m tests.lab down
	rm -rf $(VENV) *.egg-info .pytest_cache

# Fleet audit benchmark (not a test): (a) the audit vs a plain virsh/ssh script on the audit
# lab, (b) the checking step on a generated fleet of 10,000 hosts and 100,000 guests.
bench-audit: install
	$(PY) -m tests.bench.bench_audit $(BENCH_ARGS)

# Fleet benchmark (not a test): migcheck audit over 3, 10 and 44 real lab hosts, next to the
# single-pair check on the same hosts (FLEET_ARGS, e.g. --sizes 3,10,44 --runs 3 --jobs 16).
bench-fleet: install
	$(PY) -m tests.bench.bench_fleet $(FLEET_ARGS)

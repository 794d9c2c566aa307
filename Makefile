# tomato_gevent -- see README.md.  `make demo` runs the demo, `make test` the tests.
PYTHON    ?= python3
VENV      ?= .venv
PREFIX    ?= /usr/local
DLC_DATA  ?= third_party/domain-list-community/data
VPY        = $(VENV)/bin/python
# `make coverage` runs as nobody, and `make install` serves every user and units with
# ProtectHome=: neither can use a venv built from a Python under /root or a home (pyenv),
# so both build theirs from the system python3.
SYSTEM_PYTHON ?= /usr/bin/python3
COV_VENV  ?= .venv-nobody
FUZZ_MINUTES ?= 5
# Debian packages the tests drive as real clients/servers (command:package).
TEST_APT   = ip:iproute2 ping:iputils-ping iperf3:iperf3 curl:curl tinyproxy:tinyproxy ss:iproute2 sysctl:procps ethtool:ethtool nft:nftables faketime:faketime setpriv:util-linux strace:strace
BENCH_APT  = $(TEST_APT) openvpn:openvpn wrk:wrk nginx:nginx-light openssl:openssl tc:iproute2 microsocks:microsocks

.PHONY: all venv test unit fuzz coverage demo bench rules install uninstall clean

all: venv

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	@PYTHON=$(PYTHON) scripts/ensure-apt import:ensurepip:python3-venv
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

test: venv
	@scripts/ensure-apt $(TEST_APT)
	$(VPY) -m pytest -q tests

unit: venv
	$(VPY) -m pytest -q tests/unit

# The fuzz tests under the "fuzz" hypothesis profile for FUZZ_MINUTES in all; prints inputs
# tried and crashes per test. Crashes are kept in .hypothesis/ and replayed first next time.
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz FUZZ_MINUTES=$(FUZZ_MINUTES) $(VPY) -m pytest -q tests/fuzz

$(COV_VENV)/.installed: setup.cfg setup.py pyproject.toml
	@PYTHON=$(SYSTEM_PYTHON) scripts/ensure-apt import:ensurepip:python3-venv
	$(SYSTEM_PYTHON) -m venv $(COV_VENV)
	$(COV_VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

# tests/unit alone as an unprivileged user, with the per-module coverage report.
coverage: $(COV_VENV)/.installed
	scripts/coverage-unprivileged $(COV_VENV)/bin/python

demo: venv
	@scripts/ensure-apt $(TEST_APT)
	PYTHON=$(abspath $(VPY)) scripts/demo.sh

bench: venv
	@scripts/ensure-apt $(BENCH_APT)
	$(VPY) bench/run.py

rules: venv
	$(VPY) bin/dlmerge $(DLC_DATA) -o rules/dlc.txt

install:
	@PYTHON=$(SYSTEM_PYTHON) scripts/ensure-apt import:ensurepip:python3-venv
	scripts/install.sh install "$(PREFIX)" "$(SYSTEM_PYTHON)"

uninstall:
	scripts/install.sh uninstall "$(PREFIX)"

clean:
	rm -rf $(VENV) $(COV_VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

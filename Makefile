# tomato_gevent -- see README.md.  `make demo` runs the demo, `make test` the tests.
PYTHON    ?= python3
VENV      ?= .venv
PREFIX    ?= /usr/local
DLC_DATA  ?= ../shared/domain-list-community/data
VPY        = $(VENV)/bin/python
# Debian packages the tests drive as real clients/servers (command:package).
TEST_APT   = ip:iproute2 ping:iputils-ping iperf3:iperf3 curl:curl tinyproxy:tinyproxy ss:iproute2 sysctl:procps faketime:faketime setpriv:util-linux
BENCH_APT  = $(TEST_APT) openvpn:openvpn wrk:wrk nginx:nginx-light openssl:openssl

.PHONY: all venv test unit demo bench rules install uninstall clean

all: venv

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

test: venv
	@scripts/ensure-apt $(TEST_APT)
	$(VPY) -m pytest -q tests

unit: venv
	$(VPY) -m pytest -q tests/unit

demo: venv
	@scripts/ensure-apt $(TEST_APT)
	PYTHON=$(abspath $(VPY)) scripts/demo.sh

bench: venv
	@scripts/ensure-apt $(BENCH_APT)
	$(VPY) bench/run.py

rules: venv
	$(VPY) bin/dlmerge $(DLC_DATA) -o rules/dlc.txt

install:
	scripts/install.sh install "$(PREFIX)" "$(PYTHON)"

uninstall:
	scripts/install.sh uninstall "$(PREFIX)"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Every target sets itself up: a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast fuzz protos demo demo-tls certs directory peer cluster postman bench bench-quick clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# two workers, a test file each at a time: most integration tests wait on real processes, so the
# machine's two cores run two files at once (about 6 min instead of 10); TEST_WORKERS=0 runs serially
TEST_WORKERS ?= 2
test: venv
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# the tests of the directory's and the peer's modules and what they must agree on
# (tests/test_*.py); no integration tests, though some start a directory process
test-fast: venv
	$(PY) -m pytest tests/directory_api tests/peer_node tests/protos tests/test_*.py $(PYTEST_ARGS)

# schemathesis against a live directory from its own OpenAPI document: make test runs a bounded
# run (tests/integration/test_fuzz.py, fixed seed, under a minute); this one runs longer
FUZZ_EXAMPLES ?= 300
fuzz: venv
	P2P_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/integration/test_fuzz.py -s --timeout 3600 $(PYTEST_ARGS)

protos: venv
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. protos/p2p.proto

clean:
	rm -rf $(VENV) node_modules .pytest_cache

# --- running the pieces -----------------------------------------------------------------
CONFIG ?= peerConfig.ini

directory: venv
	$(PY) -m directory_api

peer: venv
	$(PY) -m peer_node serve --config $(CONFIG)

demo: venv
	$(PY) scripts/demo.py

# the same story over TLS: `p2p certs` makes a local CA, the peers serve gRPC over TLS
demo-tls: venv
	$(PY) scripts/demo.py --tls

# a local CA and certificates for a directory and PEERS peers in CERTS_DIR (README "TLS")
CERTS_DIR ?= tls
PEERS ?= 3
certs: venv
	$(PY) -m peer_node certs $(CERTS_DIR) --peers $(PEERS)

# two directory processes on a PostgreSQL database of their own, HAProxy in front (README:
# "Several directories behind a load balancer"); CLUSTER_ARGS="--directories 3 --port 9000"
cluster: venv
	$(PY) scripts/cluster.py $(CLUSTER_ARGS)

# --- Postman collection, run by newman against a live directory (CI runs this) ----------
postman: venv
	bash scripts/run_postman.sh

# --- benchmarks (not run by CI) ---------------------------------------------------------
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	bash bench/install_tools.sh
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench.run

bench-quick: $(BENCH_STAMP)
	$(PY) -m bench.run --quick

# mcptrace — `make demo` runs the main job on the shipped samples, `make test` the test suite.
# Both work on a fresh Debian machine with Python 3.11: they create .venv and install what they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
SUDO   := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: demo test test-fast venv venv-test chromium samples incidents pictures bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

venv: $(PY)
	$(PIP) install -q -e .

venv-test: $(PY)
	$(PIP) install -q -e '.[test]'

# kaleido (PNG/SVG export) drives a system Chromium; the browser tests drive it through the
# system chromedriver (Debian's chromium-driver): no browser is ever downloaded.
chromium:
	@{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 ; } && \
	  command -v chromedriver >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver ; }

demo: venv chromium
	$(PY) -m mcptrace.demo data/samples --db out/demo.duckdb --out out

# the in-process tests (quick and slow) and the real-process and notebook tests that may run beside them on two
# workers; then the other real-process, browser and notebook tests on two workers (each module's on one); then
# the sample and incident generators, whose captures hold timings, with nothing beside them. The test processes
# may write bytecode (pytest keeps the test modules it rewrote, Python the compiled modules) for the next ones.
# In the first phase two workers share the two cores, so each worker's DuckDB databases run one thread
# (MCPTRACE_THREADS); the other phases run DuckDB's default, multi-threaded.
test: venv-test chromium
	PYTHONDONTWRITEBYTECODE= MCPTRACE_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup -m "(beside and not browser) or not (sdk or browser or notebooks)"
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n 2 --dist loadgroup -m "(sdk or browser or notebooks) and not (beside and not browser) and not alone"
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -m "alone"

# the suite without real SDK processes, browsers, notebooks and slow tests (markers in tests/conftest.py)
test-fast: venv-test
	MCPTRACE_THREADS=1 $(PY) -m pytest -q -n 2 -m "not sdk and not browser and not notebooks and not slow"

# Regenerate data/samples (and data/bare) from real MCP SDK client/server processes.
samples: venv-test
	$(PY) -m mcptrace.samples data/samples

incidents: venv-test
	$(PY) -m mcptrace.samples.incidents data/incidents

# The README's pictures (docs/img) from the shipped samples and incidents; the explorer's is the
# screenshot the JupyterLab browser check takes. tests/test_pictures.py fails when they are stale.
pictures: venv-test chromium
	$(PY) -m mcptrace.samples.pictures docs/img
	$(PY) -m pytest -q tests/test_browser_explorer.py -k renders_in_jupyterlab
	cp test-artifacts/explorer.png docs/img/explorer.png

bench: venv-test
	$(PY) benchmarks/bench.py --out out/bench
	$(PY) benchmarks/timeline_50k.py

clean:
	rm -rf out .pytest_cache test-artifacts

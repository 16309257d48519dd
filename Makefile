# hemix-tf: `make demo` runs the main job on the embedded default data; `make test` runs the suite.
# Both create the environment first if it is missing (idempotent: a stamp file records the inputs).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# tf_keras (Keras 2): TFX, TFMA and Beam's TF handler load models through tf.keras.
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 2
STAMP := $(VENV)/.hemix-installed
INSTALL_INPUTS := requirements/stack.txt requirements/overrides.txt requirements/dev.txt setup.py tools/tfx_bsl_sql_util_shim.py
RUN_DIR ?= runs/demo

.PHONY: install browser demo test test-fast clean

install: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --disable-pip-version-check uv
	# uv applies the overrides (ml-metadata 1.17.1, TFDV 1.16.1) that plain pip cannot resolve.
	$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode \
	    -r requirements/stack.txt -r requirements/dev.txt --overrides requirements/overrides.txt
	$(VENV)/bin/uv pip install --python $(PY) --compile-bytecode --no-deps -e .
	# TFDV 1.16 imports tfx_bsl.arrow.sql_util (removed in tfx-bsl 1.21): a .pth shim provides it in
	# every interpreter, Beam worker processes included.
	@SP=$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  cp tools/tfx_bsl_sql_util_shim.py "$$SP/" && echo "import tfx_bsl_sql_util_shim" > "$$SP/tfx_bsl_sql_util_shim.pth"
	@touch $(STAMP)

demo: install
	$(PY) -m hemix_tf.demo --run_dir=$(RUN_DIR)

# The report's test opens it in a real headless browser: Debian's Chromium and its WebDriver.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver >/dev/null; }

# The suite in TEST_WORKERS processes (pytest-xdist), a test file per process at a time: alone it keeps
# one of CI's two cores busy (TensorFlow's ops and the Beam runs are mostly serial at these sizes).
TEST_WORKERS ?= 2
test: install browser
	$(VENV)/bin/ruff check hemix_tf pipelines tests benchmarks tools
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=10 tests

test-fast: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" tests

clean:
	rm -rf runs .pytest_cache

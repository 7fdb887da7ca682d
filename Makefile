# pgrad: two commands on a fresh machine.
#   make demo   trains PPO on CartPole-v1 (100k steps) and prints its evaluation
#   make test   installs the test extras and runs the whole suite (learning tests included)
# torch is pinned through constraints.txt: a bare torch requirement would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# PIP_ARGS: extra pip options, e.g. PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu" where no
# CPU wheel of torch is at hand (PyPI's Linux torch is the CUDA build)
PIP_ARGS ?=
PIP_INSTALL := $(PIP) install --disable-pip-version-check -q -c constraints.txt $(PIP_ARGS)
TEST_EXTRAS := dev,marl,ray,video,atari,minatar

.PHONY: demo test test-quick test-learning bench lint docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --disable-pip-version-check -q --upgrade pip

$(VENV)/.installed-base: pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(PY)
	$(PIP_INSTALL) -e ".[$(TEST_EXTRAS)]"
	touch $@ $(VENV)/.installed-base

demo: $(VENV)/.installed-base
	$(VENV)/bin/pgrad train ppo CartPole-v1 --steps 100000

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

# everything but the learning tests: the loop for day-to-day work (about 5 minutes on 2 cores)
test-quick: $(VENV)/.installed-test
	$(PY) -m pytest -q -m "not learning"

test-learning: $(VENV)/.installed-test
	$(PY) -m pytest -q -m learning

# pgrad against Stable-Baselines3, every row of the README's speed table (about 20 minutes)
bench: $(VENV)/.installed-test
	$(PIP_INSTALL) -e ".[$(TEST_EXTRAS),bench]"
	$(VENV)/bin/pgrad bench

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests benchmarks

# regenerate the tables of docs/algorithms/*.md from the Configs, docs/equations.md and docs/metrics.md
# (tests/unit/test_docs.py fails until this is run after a Config field or docstring changes)
docs: $(VENV)/.installed-base
	$(PY) docs/gen_hparams.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info

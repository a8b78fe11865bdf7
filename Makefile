# poster-genre-kit: `make baseline` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= work
DATA ?=
BASELINE ?= lenet
COMPARE ?= lite0-frozen

.PHONY: setup services test baseline leaderboard compare bench stress fuzz clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

services:
	@bash scripts/install-test-services.sh

test: setup services
	$(PY) -m pytest -q

baseline: setup
	$(PY) -m kit baseline --workdir $(WORKDIR) --baseline $(BASELINE) $(if $(DATA),--data $(DATA))

leaderboard: setup
	$(PY) -m eval leaderboard submissions --workdir $(WORKDIR)

compare: setup
	$(PY) -m kit compare --workdir $(WORKDIR) --config baselines/$(COMPARE).toml

bench: setup
	$(PY) bench/run.py --workdir $(WORKDIR)/bench

stress: setup
	$(PY) bench/stress.py --workdir $(WORKDIR)/stress

fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q tests/test_submission.py

clean:
	rm -rf $(WORKDIR)

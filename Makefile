PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check wsgi_apisec flask_apisec
	$(BIN)/mypy --strict wsgi_apisec flask_apisec
	$(BIN)/python -m pytest -n 2 -q

demo: $(STAMP)
	$(BIN)/python -m sample_apps.demo

lint: $(STAMP)
	$(BIN)/ruff check wsgi_apisec flask_apisec
	$(BIN)/mypy --strict wsgi_apisec flask_apisec

bench: $(STAMP)
	$(BIN)/python -m benchmarks.jws_verify
	$(BIN)/python -m benchmarks.tokens
	$(BIN)/python -m benchmarks.signing
	$(BIN)/python -m benchmarks.httpsig
	$(BIN)/python -m benchmarks.memory --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

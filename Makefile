# docgate developer entry points. `make help` lists them.
# Dependencies are stamp files: they reinstall only when their lock/requirements change.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
EMULATORS := $(PY) scripts/emulators.py
PYTEST_ARGS ?=
# checkov lives in its own virtualenv: its many pinned dependencies stay out of the app's.
TOOLS_VENV := .venv-tools
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test emulators stop status lint fmt bench clean distclean deps help infra-check browser screenshots

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-engines.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	@touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON_BOOTSTRAP) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-tools.txt
	@touch $@

# The stamp holds the lock file's hash: a fresh checkout (newer mtime, same lock) sharing an
# installed node_modules does not reinstall it (concurrent `npm ci` into one directory empty it).
node_modules/.installed: package-lock.json
	@if sha256sum --status -c node_modules/.installed 2>/dev/null; then touch $@; else \
		npm ci --no-audit --no-fund && sha256sum package-lock.json > $@; fi

deps: $(VENV)/.installed node_modules/.installed ## Install Python and Node dependencies

local.settings.json:
	cp local.settings.sample.json $@

run: deps local.settings.json ## Start the emulators and the local Functions host (devhost)
	@echo "docgate on http://127.0.0.1:7071/api  (health: http://127.0.0.1:7071/api/health)"
	@echo "upload a file:  $(PY) -m scripts.upload path/to/file.pdf --tenant contoso"
	@echo "a token:        $(PY) -m devhost token --user alice --tenant default --role admin   (or the API key dev-local-key)"
	@echo "then:           curl -H \"Authorization: Bearer <token>\" http://127.0.0.1:7071/api/documents"
	$(EMULATORS) run -- $(PY) -m devhost

# The browser tests drive Debian's Chromium (Playwright downloads no browser). Installed here when
# missing and we are root with apt; otherwise those tests skip and say why (CI requires them).
browser: ## Install Debian's chromium for the browser tests when it is missing (root + apt)
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "browser: $(CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "browser: installing Debian's chromium (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			|| echo "browser: chromium could not be installed: the browser tests will skip"; \
	else \
		echo "browser: $(CHROMIUM) is missing and cannot be installed here (needs root and apt):" \
			"the browser tests will skip"; \
	fi

test: deps infra-check browser ## Validate infra/ (checkov), then run the test suite with the emulators (PYTEST_ARGS=...)
	$(EMULATORS) run -- $(PY) -m pytest $(PYTEST_ARGS)

screenshots: deps browser ## Regenerate the README's screenshots (docs/screenshots/) from the browser tests
	$(EMULATORS) run -- env DOCGATE_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/browser -q

emulators: deps ## Start Azurite and the Cosmos emulator in the background (reuses running ones)
	$(EMULATORS) start

stop: ## Stop the emulators started by `make emulators`
	@python3 scripts/emulators.py stop

status: ## Show whether the emulators answer
	@python3 scripts/emulators.py status

lint: $(VENV)/.installed infra-check ## Check lint and formatting (ruff) and the Bicep templates (checkov)
	$(RUFF) check .
	$(RUFF) format --check .

infra-check: $(VENV)/.installed $(TOOLS_VENV)/.installed ## Validate infra/*.bicep offline with checkov: zero failed checks
	$(PY) scripts/infra_check.py --checkov $(TOOLS_VENV)/bin/checkov

fmt: $(VENV)/.installed ## Format the code and apply safe lint fixes (ruff)
	$(RUFF) check --fix .
	$(RUFF) format .

bench: deps ## Run the benchmarks (python -m bench, else each bench/*.py) with the emulators
	@if [ -f bench/__main__.py ]; then \
		$(EMULATORS) run -- $(PY) -m bench; \
	else \
		for script in bench/*.py; do \
			[ -e "$$script" ] || continue; \
			echo "== $$script"; \
			$(EMULATORS) run -- $(PY) "$$script" || exit $$?; \
		done; \
	fi

clean: stop ## Stop the emulators and remove local data (.data, .devhost)
	rm -rf .data .devhost

distclean: clean ## Also remove the virtualenvs and node_modules
	rm -rf $(VENV) $(TOOLS_VENV) node_modules

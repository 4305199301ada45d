# The two commands a newcomer needs: `make run` and `make test`. Both install into .venv/.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000
PORTAL_BASE_URL ?= http://127.0.0.1:$(PORT)
export PORT PORTAL_BASE_URL
# Every process defaults to production settings; these targets (and the Procfile) are development.
DEV := DJANGO_SETTINGS_MODULE=portal.settings.dev

.PHONY: run test trials install services browser migrate demo bench bench-provisioning bench-site bench-pages bench-load bench-access bench-triggers clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

services: install
	@$(PY) scripts/services.py
	@$(DEV) $(PY) manage.py terraform_setup

# Debian's Chromium for the browser tests (tests/browser), installed with apt-get when missing.
browser: install
	@command -v chromium >/dev/null || $(PY) scripts/services.py --chromium

migrate: services
	$(DEV) $(PY) manage.py migrate --noinput

demo: migrate
	$(DEV) $(PY) manage.py load_demo

run: demo
	@mkdir -p var
	@echo "Portal on http://127.0.0.1:$(PORT)/ (sign-ins in README.md); Ctrl-C stops everything."
	@echo "A process that exits is started again (scripts/supervise.py)."
	$(VENV)/bin/honcho start --port $(PORT)

# One process: the suite's groups (tests/conftest.py) still contend for Terraform's state database
# and the warehouse when run side by side. TEST_PROCESSES=2 tries two pytest-xdist processes.
TEST_PROCESSES ?= 0
test: services browser
	$(VENV)/bin/pytest -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS)

bench: migrate
	$(PY) bench/wid_save.py

bench-provisioning: services
	$(PY) bench/provisioning.py

bench-site: services
	$(PY) bench/site.py

bench-pages: services
	$(PY) bench/pages.py

bench-access: services
	$(PY) bench/access.py $(BENCH_ARGS)

bench-triggers: services
	$(PY) bench/triggers.py $(BENCH_ARGS)

bench-load: services
	$(PY) bench/load.py $(BENCH_ARGS)

# The long trials (README, "Reliability"): ten SIGKILLs of the worker mid-apply and each fault test of
# tests/faults once more, then the 10-minute load run. `make test` runs one trial of each fault.
trials: services
	FAULT_TRIALS=$${FAULT_TRIALS:-10} $(VENV)/bin/pytest -p no:cacheprovider -s -ra tests/faults $(PYTEST_ARGS)
	$(PY) bench/load.py $(BENCH_ARGS)

clean:
	rm -rf var/test-* var/bench-*

# Set-up-to-result commands. Both create or reuse .venv (tools/venv.sh) for
# the interpreter PYTHON, whose version picks the stack: 3.9-3.11 install
# requirements.txt (pinned, TensorFlow 2.15), 3.12-3.13
# requirements-tf2.21.txt (current, TensorFlow 2.21). By default PYTHON is
# the newest supported python3.X that runs, else python3.
SUPPORTED := 3.13 3.12 3.11 3.10 3.9
PYTHON ?= $(shell for v in $(SUPPORTED); do \
  python$$v -c '' >/dev/null 2>&1 && { echo python$$v; exit 0; }; \
  done; echo python3)
VENV := .venv
PY := $(VENV)/bin/python
# Extra pytest arguments, e.g. PYTEST_ARGS='-m "not slow"'.
PYTEST_ARGS ?=
# Two test processes (pytest-xdist), each test class kept in one of them so
# that a class's set-up runs once.
PYTEST_WORKERS ?= 2

.PHONY: demo test venv clean

venv:
	@sh tools/venv.sh '$(PYTHON)' $(VENV)

demo: venv
	$(PY) -m tools.demo

test: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope tests $(PYTEST_ARGS)

clean:
	rm -rf results

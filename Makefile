# Efficient GANs — a hands-on workbook. `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= class
STAMP := $(VENV)/.installed
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: help setup lab test workbook student grade clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the pinned dependencies and course_lib

lab: $(STAMP) ## start JupyterLab on notebooks/ (127.0.0.1, token on; the URL is printed)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --no-browser $(ROOT_FLAG)

test: $(STAMP) ## run the whole test suite
	$(PY) -m pytest $(PYTEST_ARGS)

workbook: $(STAMP) ## run every solutions/ notebook headless (PRESET=class|ci) into build/
	$(PY) -m course_lib.workbook --preset $(PRESET)

student: $(STAMP) ## regenerate notebooks/ from solutions/
	$(PY) -m course_lib.student

grade: $(STAMP) ## grade notebooks/ (or GRADE=path/to/submissions; GRADE_ARGS="--csv grades.csv")
	$(PY) -m course_lib.grade $(or $(GRADE),notebooks) $(GRADE_ARGS)

clean: ## remove build/ (the venv and the model cache stay)
	rm -rf build

# Two commands on a fresh machine with Python 3.11:  make book  (the main job)  and  make test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Offline by default: this project is built without internet, so the book and tests use an explicitly
# random teacher (named in every figure and record). `make book DSKD_TEACHER=imagenet` with internet.
export DSKD_TEACHER ?= random
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test book demo student-notebooks clean

# torch/torchvision pins live in constraints.txt, not in the package's requirements
# (in Colab, `pip install dskd` keeps Colab's torch).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,book]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

demo: $(STAMP)
	$(VENV)/bin/dskd demo

clean:
	rm -rf _build

# Two commands on a fresh machine with Python 3.11:  make book  (the main job)  and  make test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Offline by default: this project is built without internet, so the book and tests use the teacher the
# package ships, pretrained here without ImageNet (dskd/weights/; named in every figure and record).
# `make book DSKD_TEACHER=imagenet` with internet gives the paper's teacher; DSKD_TEACHER=random, a random one.
export DSKD_TEACHER ?= offline-pretrained
# Real data: $DSKD_DATA (default ~/dskd_data). This project's machines keep MT Defects in ../shared/data,
# so the book's chapters find it there; the package itself never looks outside $DSKD_DATA.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/magnetic-tile),)
export DSKD_DATA ?= $(SHARED_DATA)
endif
STAMP  := $(VENV)/.installed-stamp

.PHONY: install browser test book demo student-notebooks clean

# torch/torchvision pins live in constraints.txt, not in the package's requirements
# (in Colab, `pip install dskd` keeps Colab's torch).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,book]"
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the browser test of the book (never a browser download at run time).
browser:
	@if [ -x /usr/bin/chromium ]; then echo "browser: /usr/bin/chromium present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "browser: apt-get could not install chromium; the browser test will skip, saying why"; \
	else echo "browser: not root or no apt-get; the browser test will skip, saying why"; fi

test: $(STAMP) browser
	$(PY) -m pytest

book: $(STAMP)
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

demo: $(STAMP)
	$(VENV)/bin/dskd demo

student-notebooks: $(STAMP)
	$(PY) -m dskd.student_copies notebooks/ student_notebooks/

clean:
	rm -rf _build

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

.PHONY: install browser test book demo student-notebooks lab wheel pdf links clean

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

# JupyterLab on the course: installs JupyterLab into .venv once (the `lab` extra), then serves notebooks/
# (the explorers are live there). LAB_ARGS passes options to it, for example
#   make lab LAB_ARGS="--no-browser --ip=127.0.0.1 --port=8899"
LAB_ARGS ?=
LAB_STAMP := $(VENV)/.lab-stamp
# JupyterLab refuses to run as root unless told; root is the usual user in containers and CI
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
$(LAB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,book,lab]"
	touch $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(LAB_ROOT) $(LAB_ARGS)

# The wheel that `pip install` builds, in dist/: the package, its teacher weights and a copy of results/
# as dskd/_results (setup.py), so the chapters show the recorded numbers outside this repository.
wheel: $(STAMP)
	rm -rf build dist
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@$(PY) -c "import glob, os; [print(f'{w}: {os.path.getsize(w) / 1e6:.1f} MB') for w in glob.glob('dist/*.whl')]"

# The whole book as one PDF, offline: Chromium prints every page of the built HTML book (in _toc.yml's
# order) and the pages are joined, with a bookmark per page (tools/book_pdf.py). DSKD_CHROMIUM names the
# browser (default /usr/bin/chromium, which `make browser` installs). It is also copied into the HTML book,
# and the book is built again (nothing is executed again) so that the page Run it yourself links it.
pdf: book browser
	$(PY) -m tools.book_pdf _build/html _build/pdf/dskd-book.pdf --copy-to _build/html/downloads/dskd-book.pdf
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

# Rewrite every chapter's install cell and every mention of the repository from _config.yml's
# repository.url (the one place that names it); `python -m tools.repository --check` only checks.
links: $(STAMP)
	$(PY) -m tools.repository

clean:
	rm -rf _build build dist

# Two entry points for a fresh machine:  make repro  (every experiment: `dvc repro`)  and  make test.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# make review BASE=<rev>: the revision the workspace is compared with
BASE ?= main

.PHONY: repro test install review

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

install: $(STAMP)

# The stages call `python`: put the venv first on PATH so they run inside it. Then push every
# artifact to the default remote (a folder beside the checkout: README, "Review and share").
repro: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/dvc repro
	$(VENV)/bin/dvc push

test: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q

# review/report.md + PNGs: params, metrics and curves of the workspace against $(BASE) (what CI posts on a PR).
review: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m deepsnn.review --base $(BASE) --out review

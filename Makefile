# Two entry points for a fresh machine:  make repro  (the write-up's two experiments)  and  make test.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# make review BASE=<rev>: the revision the workspace is compared with
BASE ?= main

.PHONY: repro comparison test install review

$(STAMP): requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

install: $(STAMP)

# The stages call `python`: put the venv first on PATH so they run inside it. Then push every
# artifact to the default remote (a folder beside the checkout: README, "Sharing results").
# `dvc repro` with no target would run the comparison_* stages too (`dvc repro`: everything).
repro: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/dvc repro eval_sweep eval_spatial
	$(VENV)/bin/dvc push

# The comparison experiments (dvc.yaml's comparison_* stages): conversion on MNIST, direct training on CIFAR-10.
comparison: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/dvc repro comparison_eval_sweep comparison_eval_spatial
	$(VENV)/bin/dvc push

test: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q

# review/report.md + PNGs: params, metrics and curves of the workspace against $(BASE) (what CI posts on a PR).
review: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m deepsnn.review --base $(BASE) --out review

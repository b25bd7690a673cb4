# Developer shortcuts; CI runs .ci/run (install + the README test command).
.PHONY: install check lint test slow sample nightly

install:
	uv sync --locked --all-groups --compile-bytecode

lint:
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy

check: lint test

test:
	uv run pytest

slow:
	uv run pytest -m slow

sample:
	uv run crossmatch sample --out data/sample

nightly:
	uv run python flows/nightly.py

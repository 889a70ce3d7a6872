# Shortcuts for the README's commands.
.PHONY: run test bench

run:
	python app.py

test:
	python -m pytest -q tests

# What users wait for, on this machine (about 5 minutes on 2 CPU cores); writes bench/bench.md and .json
bench:
	python -m rbft bench --out bench

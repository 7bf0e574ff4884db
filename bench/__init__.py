"""OfficeBox benchmarks: `python -m bench` runs every bench/bench_*.py (see bench/README.md)."""

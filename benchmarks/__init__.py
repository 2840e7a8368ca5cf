"""Hand-run benchmarks. Results are collected, dated, in docs/benchmarks.md."""

"""One reader per registered dataset, each returning a validated BenchmarkStudy."""

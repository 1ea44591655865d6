"""Helpers shared by the tests (and the benchmarks): the sample-warehouse builder, the import contract."""

"""Shared by every test module: plain `pytest` (and `make test`) collect the whole suite from here.

tests/ is on sys.path (pytest's rootdir-relative import of this conftest), so test modules import
their helpers as `from support.<module> import ...` (tests/support/).
"""

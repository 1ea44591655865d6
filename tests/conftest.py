"""Shared by every test module: plain `pytest` (and `make test`) collect the whole suite from here.

tests/ is on sys.path (pytest's rootdir-relative import of this conftest), so test modules import
their helpers as `from support.<module> import ...` (tests/support/).

Suite-wide setup: the pipeline refuses to hash PII without a salt of its own (there is no built-in
one), so the tests set one; every subprocess they start inherits it. Tests of the refusal unset it.
"""

import os

os.environ.setdefault("TRACKPLAN_HASH_SALT", "trackplan-test-suite-salt")

"""Suite-wide setup: the pipeline refuses to hash PII without a salt of its own (there is no built-in
one), so the tests set one; every subprocess they start inherits it. Tests of the refusal unset it."""

import os

os.environ.setdefault("TRACKPLAN_HASH_SALT", "trackplan-test-suite-salt")

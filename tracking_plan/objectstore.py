"""Objects in a store (s3://, gs://, az://) through fsspec: the client and opening one object.

Kept apart from `landing` (layouts, listing) so that `reader`, which `landing` builds on, can open an
object without importing `landing` back.
"""

from __future__ import annotations

import os


class LandingError(Exception):
    """The landing root cannot be listed (no such bucket, access denied, no client for the scheme)."""


_FS: dict = {}


# The environment variables each store's client reads its credentials and endpoint from (see the README,
# "Reading from your bucket"): a change of any of them gets a new client.
CREDENTIAL_ENV = ("AWS_", "GOOGLE_", "STORAGE_EMULATOR_HOST", "GCE_", "NO_GCE_CHECK", "CLOUDSDK_", "AZURE_")
EXTRAS = {"gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}


def _fs(url: str):
    """(filesystem, path) for an object URL. One client per scheme and credential environment: a
    change of AWS_* variables (another profile, key or endpoint) gets a new client."""
    import fsspec

    scheme = url.split("://", 1)[0]
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(CREDENTIAL_ENV)))
    try:
        cls = fsspec.get_filesystem_class(scheme)
        fs = _FS.get((scheme, env))
        if fs is None:
            fs = _FS[(scheme, env)] = fsspec.filesystem(scheme, skip_instance_cache=True)
        return fs, cls._strip_protocol(url)
    except ImportError as exc:
        if scheme in EXTRAS:
            how = f"the {EXTRAS[scheme]} extra (pip install 'trackplan[{EXTRAS[scheme]}]')"
        else:
            how = f"the {exc.name} package (pip install {exc.name})"
        raise LandingError(f"{url}: reading {scheme}:// needs {how}") from None
    except ValueError as exc:
        raise LandingError(f"{url}: {exc}") from None


def open_object(url: str):
    """A readable, seekable file of one object (OSError when it cannot be opened: a skipped object)."""
    fs, path = _fs(url)
    try:
        return fs.open(path, "rb")
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - a store client's own error: still an object that could not be opened
        raise OSError(f"{type(exc).__name__}: {exc}") from None

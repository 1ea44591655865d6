"""Great Expectations' Data Docs, made to open offline.

GX writes pages that load Bootstrap, jQuery, bootstrap-table, Font Awesome, Vega and its logo from
CDNs; offline they render unstyled with an empty index. `make install` fetches those exact files
from the npm registry (``data_docs_assets/package.json``, pinned to the versions GX's templates
name); `make_offline` copies each one a page uses into the site's ``static/vendor/`` and points the
page at the copy. A URL it has no copy for is removed from the page and reported, never left to
fail silently in the reader's browser.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ASSETS = Path(__file__).parent / "data_docs_assets" / "node_modules"

# CDN address (regular expression) → file under node_modules ({0} is the first group)
CDN_FILES: list[tuple[str, str]] = [
    (r"https://unpkg\.com/bootstrap-table@[\d.]+/dist/(.+)", "bootstrap-table/dist/{0}"),
    (r"https://(?:maxcdn|stackpath)\.bootstrapcdn\.com/bootstrap/[\d.]+/(.+)", "bootstrap/dist/{0}"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/bootstrap-datepicker/[\d.]+/(.+)", "bootstrap-datepicker/dist/{0}"),
    (r"https://cdn\.jsdelivr\.net/npm/@forevolve/bootstrap-dark@[\d.]+/(.+)", "@forevolve/bootstrap-dark/{0}"),
    (r"https://cdn\.jsdelivr\.net/npm/vega@5", "vega/build/vega.min.js"),
    (r"https://cdn\.jsdelivr\.net/npm/vega-lite@5", "vega-lite/build/vega-lite.min.js"),
    (r"https://cdn\.jsdelivr\.net/npm/vega-embed@6", "vega-embed/build/vega-embed.min.js"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/font-awesome/[\d.]+/(css/.+)", "@fortawesome/fontawesome-free/{0}"),
    (r"https://code\.jquery\.com/jquery-[\d.]+\.min\.js", "jquery/dist/jquery.min.js"),
    (r"https://cdnjs\.cloudflare\.com/ajax/libs/popper\.js/[\d.]+/(.+)", "popper.js/dist/{0}"),
]
# files a copied stylesheet loads relative to itself (Font Awesome's fonts)
COMPANIONS = {"@fortawesome/fontawesome-free/css": ["@fortawesome/fontawesome-free/webfonts"]}
# GX's logo from its own bucket: the site ships the same picture
LOGO = re.compile(r"https://great-expectations-web-assets\.s3[^\"')\s]*?/(?:logo-long|full_logo_dark)\.png[^\"')\s]*")
TAG = re.compile(
    r"<(script|link|img)\b[^>]*?\b(src|href)\s*=\s*([\"'])(https?://[^\"']+)\3[^>]*>(\s*</script>)?", re.IGNORECASE
)
SRI = re.compile(r"\s+(integrity|crossorigin)\s*=\s*([\"'])[^\"']*\2|\s+crossorigin(?=[\s>/])", re.IGNORECASE)


@dataclass
class OfflineResult:
    pages: int = 0
    replaced: int = 0
    copied: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)  # "page: url" for every address with no local copy


def _local(url: str) -> str | None:
    for pattern, target in CDN_FILES:
        m = re.fullmatch(pattern, url)
        if m:
            return target.format(*m.groups())
    return None


def _copy(rel: str, vendor: Path, result: OfflineResult) -> bool:
    src = ASSETS / rel
    if not src.is_file():
        return False
    dst = vendor / rel
    if rel not in result.copied:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        for folder, extra in COMPANIONS.items():
            if rel.startswith(folder + "/"):
                for companion in extra:
                    if (ASSETS / companion).is_dir():
                        shutil.copytree(ASSETS / companion, vendor / companion, dirs_exist_ok=True)
        result.copied.add(rel)
    return True


def make_offline(site: str | Path) -> OfflineResult:
    """Rewrite every HTML page and stylesheet of a Data Docs site to use local copies of its CDN files."""
    site = Path(site)
    vendor = site / "static" / "vendor"
    logo = site / "static" / "images" / "logo-long.png"
    result = OfflineResult()
    for page in sorted([*site.rglob("*.html"), *site.rglob("*.css")]):
        if vendor in page.parents:
            continue
        text = page.read_text(encoding="utf-8")
        here = page.parent

        def tag(m: re.Match, page=page, here=here) -> str:
            url = m.group(4)
            rel = _local(url)
            if rel is not None and _copy(rel, vendor, result):
                result.replaced += 1
                local = os.path.relpath(vendor / rel, here)
                return SRI.sub("", m.group(0).replace(url, local))
            if LOGO.fullmatch(url) and logo.is_file():
                result.replaced += 1
                return m.group(0).replace(url, os.path.relpath(logo, here))
            result.removed.append(f"{page.relative_to(site)}: {url}")
            return ""

        new = TAG.sub(tag, text)
        if logo.is_file():
            new, n = LOGO.subn(lambda _m, here=here: os.path.relpath(logo, here), new)
            result.replaced += n
        if new != text:
            page.write_text(new, encoding="utf-8")
        result.pages += page.suffix == ".html"
    return result


def external_loads(html: str) -> list[str]:
    """The addresses a page would fetch from the network (scripts, stylesheets, images)."""
    return [m.group(4) for m in TAG.finditer(html)] + LOGO.findall(html)

"""Accessibility checks of a page in the browser tests: axe-core, from its npm package, injected
into the Playwright page; any serious or critical violation fails the test.

The package is fetched once with ``npm pack`` (the registry checks its integrity) into the user's
cache and then checked against the hash below, so every run uses the same rules. axe-core is
MPL-2.0; it is not part of the project and not shipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

AXE_VERSION = "4.14.1"
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
BLOCKING_IMPACTS = ("serious", "critical")


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "borgerdialog" / f"axe-core-{AXE_VERSION}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def axe_script() -> Path:
    """axe.min.js of the pinned version: from the cache, else fetched with npm."""
    target = cache_folder() / "axe.min.js"
    if target.exists() and _digest(target) == AXE_SHA256:
        return target
    if shutil.which("npm") is None:
        _missing("no npm to fetch axe-core with (apt-get install npm)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        done = subprocess.run(
            ["npm", "pack", f"axe-core@{AXE_VERSION}", "--silent", "--pack-destination", work],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            _missing(f"npm could not fetch axe-core {AXE_VERSION}: {done.stderr.strip()[-300:]}")
        (archive,) = Path(work).glob("axe-core-*.tgz")
        with tarfile.open(archive) as packed:
            member = packed.extractfile("package/axe.min.js")
            assert member is not None
            fetched = Path(work) / "axe.min.js"
            fetched.write_bytes(member.read())
        if _digest(fetched) != AXE_SHA256:
            pytest.fail(f"axe-core {AXE_VERSION} from npm is not the file this suite pinned")
        # Several test workers may fetch at once: the rename makes the last one win whole.
        fetched.replace(target)
    return target


def _missing(why: str) -> None:
    if os.environ.get("BORGERDIALOG_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"accessibility checks need axe-core: {why}")
    pytest.skip(why)


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Every axe violation of the page as it stands (WCAG 2.1 A and AA rules and best practice)."""
    # Evaluated through the DevTools protocol, not as a <script> of the page: the dashboard's
    # CSP refuses inline scripts, rightly, and the check must see the page under its real CSP.
    await page.evaluate(axe_script().read_text())
    result: dict[str, Any] = await page.evaluate(
        """async () => await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                            'best-practice']},
            resultTypes: ['violations'],
        })"""
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


async def assert_accessible(page: Any) -> None:
    """Fail with a readable list when axe finds a serious or critical violation on the page."""
    blocking = [v for v in await axe_violations(page) if v.get("impact") in BLOCKING_IMPACTS]
    lines = [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + ", ".join(" ".join(node["target"]) for node in v["nodes"][:5])
        for v in blocking
    ]
    assert not blocking, f"axe on {page.url}:\n" + "\n".join(lines)

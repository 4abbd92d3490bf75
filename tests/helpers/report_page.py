"""Checks of the comparison report's HTML page: a validator (balanced tags, no external resources, every image
an embedded PNG) and a headless-Chromium screenshot when a browser is installed."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            self.stack.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith(("data:", "#")):
                self.problems.append(f"<{tag}> refers to an external resource: {value[:80]}")
        if tag == "img":
            src = dict(attrs).get("src") or ""
            prefix = "data:image/png;base64,"
            if not src.startswith(prefix):
                self.problems.append("an <img> is not an embedded PNG")
                return
            try:
                data = base64.b64decode(src[len(prefix):], validate=True)
            except ValueError:
                self.problems.append("an <img> holds invalid base64")
                return
            if not data.startswith(PNG_MAGIC):
                self.problems.append("an <img> does not decode to a PNG")
            self.images += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unbalanced </{tag}> (open: {'/'.join(self.stack[-3:])})")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def check_html(path: str | os.PathLike[str]) -> list[str]:
    """Problems that would stop the page from rendering as one self-contained file (empty = fine):
    unbalanced tags, external references, images that are not embedded PNGs."""
    text = Path(path).read_text()
    checker = _Checker()
    checker.feed(text)
    checker.close()
    problems = list(checker.problems)
    if checker.stack:
        problems.append(f"unclosed tags: {', '.join(checker.stack)}")
    if not text.lstrip().lower().startswith("<!doctype html>"):
        problems.append("missing <!DOCTYPE html>")
    return problems


def screenshot_html(path: str | os.PathLike[str], png: str | os.PathLike[str], *, timeout: float = 60) -> Path | None:
    """Render the page with a headless Chromium into ``png``; ``None`` when no Chromium is installed."""
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    if browser is None:
        return None
    png = Path(png).resolve()
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={png}",
           "--window-size=1280,1600", Path(path).resolve().as_uri()]
    subprocess.run(cmd, check=False, capture_output=True, timeout=timeout)
    return png if png.is_file() else None

#!/usr/bin/env python3
"""Measure and photograph a report.html with headless Chromium (issue 21).

For each width (default 1400 and 600 px) it prints the page's full height, whether the
page scrolls sideways (it must not: wide tables scroll inside their own box), and every
text element whose content is wider than its box (clipped text), then writes a
full-page screenshot ``report-<width>.png`` (and ``report-<width>-top.png``, the first
screen) into ``--out``.

Usage::

    python scripts/report_screenshots.py demo-report/report.html --out /tmp/shots
    python scripts/report_screenshots.py report.html --widths 1400 600 375

Needs Chromium (Debian: ``apt-get install chromium``; or set ``CHROMIUM=/path``).
The report is never modified: a copy with a measuring script goes to a temporary
directory. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: runs in the page after it loaded; writes its findings into the DOM for --dump-dom
MEASURE = """
<script>
window.addEventListener('load', function () {
  var doc = document.documentElement, clipped = [];
  var all = document.querySelectorAll('p, li, pre, h1, h2, h3, dt, dd, figcaption, summary, blockquote');
  for (var i = 0; i < all.length; i++) {
    var el = all[i];
    if (el.closest('.table-scroll')) continue;
    if (el.scrollWidth > el.clientWidth + 1) clipped.push(el.tagName + ': ' + el.textContent.slice(0, 60));
  }
  var imgs = document.querySelectorAll('img'), wide = [];
  for (var j = 0; j < imgs.length; j++) {
    if (imgs[j].getBoundingClientRect().right > window.innerWidth + 1) wide.push(imgs[j].alt);
  }
  var heads = document.querySelectorAll('h2, h3'), sections = [];
  for (var k = 0; k < heads.length; k++) {
    sections.push([heads[k].tagName, Math.round(heads[k].getBoundingClientRect().top + window.scrollY),
                   heads[k].textContent.slice(0, 50)]);
  }
  var out = document.createElement('pre');
  out.id = 'pylme-measure';
  out.textContent = JSON.stringify({height: Math.max(doc.scrollHeight, document.body.scrollHeight),
    scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, clipped: clipped, wideImages: wide,
    sections: sections});
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")
    if not found:
        sys.exit("Chromium not found: install it (Debian: apt-get install -y chromium) or set CHROMIUM=/path")
    return found


def run(browser: str, args: list[str], profile: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
    done = subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=300)
    return done.stdout


def measure(browser: str, page: Path, width: int, profile: str) -> dict:
    dom = run(browser, [f"--window-size={width},900", "--dump-dom", page.as_uri()], profile)
    match = re.search(r'<pre id="pylme-measure">(.*?)</pre>', dom, re.S)
    if not match:
        sys.exit(f"no measurement at width {width}: did Chromium load {page}?")
    return json.loads(match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&amp;", "&"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--out", type=Path, default=Path("report-screenshots"))
    parser.add_argument("--widths", type=int, nargs="+", default=[1400, 600])
    parser.add_argument("--sections", action="store_true", help="print where each section starts (px)")
    args = parser.parse_args(argv)
    browser = chromium()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        text = args.html.read_text(encoding="utf-8")
        measured = Path(work) / "measured.html"
        measured.write_text(text.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        plain = Path(work) / "report.html"
        plain.write_text(text, encoding="utf-8")
        worst = 0
        for width in args.widths:
            found = measure(browser, measured, width, tempfile.mkdtemp(dir=work))
            sideways = found["scrollWidth"] > found["innerWidth"]
            print(f"width {width}px: height {found['height']}px; page scrolls sideways: {sideways}; "
                  f"clipped text elements: {len(found['clipped'])}; images wider than the window: "
                  f"{len(found['wideImages'])}")
            if args.sections:
                for tag, top, title in found["sections"]:
                    print(f"  {top:>6}px {'  ' if tag == 'H3' else ''}{title}")
            for item in found["clipped"][:10]:
                print(f"  clipped: {item}")
            worst = max(worst, int(sideways) + len(found["clipped"]) + len(found["wideImages"]))
            shot = (args.out / f"report-{width}.png").resolve()
            run(browser, [f"--window-size={width},{found['height']}", f"--screenshot={shot}", plain.as_uri()],
                tempfile.mkdtemp(dir=work))
            top = (args.out / f"report-{width}-top.png").resolve()
            run(browser, [f"--window-size={width},900", f"--screenshot={top}", plain.as_uri()],
                tempfile.mkdtemp(dir=work))
            print(f"  screenshots: {shot} (full page), {top} (first screen)")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())

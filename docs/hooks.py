"""MkDocs hooks: publish the examples next to the guides that link to them.

The guides in ``docs/`` link to the examples as ``../examples/...``, which is
right on GitHub and in a checkout. For the site, the example sources and
``examples/README.md`` are added as files under ``examples/``, and the links
are rewritten to point there, so the strict build can check every one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def on_files(files: Files, config: Any) -> Files:
    """Add examples/README.md and the example sources (.py) to the site."""
    paths = [EXAMPLES / "README.md", *sorted(EXAMPLES.glob("*/*.py"))]
    for path in paths:
        files.append(
            File(
                str(path.relative_to(ROOT)),
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Point ``../examples/`` (guides) and ``../docs/`` (examples) links into the site."""
    if page.file.src_uri.startswith("examples/"):
        return re.sub(r"\]\(\.\./docs/", "](../", markdown)
    depth = page.file.src_uri.count("/")
    return re.sub(r"\]\(\.\./examples/", "](" + "../" * depth + "examples/", markdown)


# The docstrings cross-reference with Sphinx roles (:class:`Closed`), which
# mkdocstrings leaves as text. On the reference pages each becomes the name in
# code, linked (through mkdocs-autorefs, when the target is documented) to its
# entry: a name without a dot is looked up in the page's module.
_ROLE = re.compile(r":(?:class|attr|meth|func|mod|exc|data|obj):<code>(~?)([\w.]+)</code>")
_PAGE_MODULE = {
    "reference/wsloop.md": "wsloop",
    "reference/relay.md": "wsloop.relay",
    "reference/testing.md": "wsloop.testing",
}


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    """Turn the Sphinx roles left in rendered docstrings into code and links."""
    module = _PAGE_MODULE.get(page.file.src_uri)
    if module is None:
        return html

    def link(match: re.Match[str]) -> str:
        short, target = match.group(1) == "~", match.group(2)
        shown = target.rsplit(".", 1)[-1] if short else target
        identifier = target if target.startswith("wsloop") else f"{module}.{target}"
        return f'<autoref identifier="{identifier}" optional><code>{shown}</code></autoref>'

    return _ROLE.sub(link, html)

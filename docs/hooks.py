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

"""The README's pictures (docs/img, `make pictures`) are current: each one's source, recomputed from the
shipped samples and incidents by the library as it is now, has the digest recorded when it was drawn."""

from __future__ import annotations

import json

from conftest import ROOT
from mcptrace.samples import pictures

IMG = ROOT / "docs" / "img"


def test_pictures_exist_and_the_readme_opens_with_them():
    readme = (ROOT / "README.md").read_text()
    first_section = readme.index("\n## ")
    for name in [*pictures.PICTURES, pictures.EXPLORER]:
        data = (IMG / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, name
        assert f"](docs/img/{name})" in readme[:first_section], f"{name} is not shown before the first section"


def test_pictures_are_drawn_from_the_current_sources():
    recorded = json.loads((IMG / pictures.MANIFEST).read_text())
    current = {name: digest for name, (digest, _src) in pictures.sources().items()}
    stale = sorted(n for n in current if recorded.get(n) != current[n])
    assert not stale, f"stale README pictures {stale}: run `make pictures` and commit docs/img"
    assert sorted(recorded) == sorted(pictures.PICTURES)

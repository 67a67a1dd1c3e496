"""Point every Colab badge, Colab clone line and quoted repository address in the notebooks and the README at the
repository named in pyproject.toml's [project.urls] (the one place it is set): ``python scripts/repository_links.py``
(``make readme`` runs it)."""

from __future__ import annotations

import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
README = PROJECT_ROOT / "README.md"

REPOSITORY_LINKS = (  # (pattern, replacement) with {url} and {path}: every place a notebook or the README names it
    (r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/",
     "https://colab.research.google.com/github/{path}/blob/main/"),
    (r'repository = "https://github\.com/[\w.-]+/[\w.-]+"', 'repository = "{url}"'),
    (r"`https://github\.com/[\w.-]+/[\w.-]+`", "`{url}`"),
)


def repository_url() -> str:
    """The repository's address, from pyproject.toml's [project.urls] (the one place it is set)."""
    import tomllib

    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def with_repository_links(text: str, url: str) -> str:
    """``text`` with every Colab badge, Colab clone line and quoted repository address pointing at ``url``."""
    path = url.removeprefix("https://github.com/")
    for pattern, replacement in REPOSITORY_LINKS:
        text = re.sub(pattern, replacement.format(url=url, path=path), text)
    return text


def sync_repository_links() -> list[Path]:
    """Rewrite the notebooks and the README to name pyproject.toml's repository; returns the files changed."""
    url, changed = repository_url(), []
    for path in [README, *sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))]:
        text = path.read_text()
        if (new := with_repository_links(text, url)) != text:
            path.write_text(new)
            changed.append(path)
    return changed


if __name__ == "__main__":
    for changed in sync_repository_links():
        print(f"{changed.relative_to(PROJECT_ROOT)}: repository links now name {repository_url()}")

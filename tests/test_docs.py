"""The README and the docs/ pages, checked without building the site (CI builds it too, with
`mkdocs build --strict`; these tests catch the same mistakes in a plain `pytest`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import compose_cfg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
README_MAX_LINES = 260

PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target); the text may run over lines
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # https:, mailto:, ...


def prose(text: str) -> str:
    """The Markdown without fenced code blocks and code spans, where `](` is no link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    """Every link target of a Markdown file, as written (anchor included)."""
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def local_links(path: Path) -> list[tuple[str, Path]]:
    """(target as written, the file it names) for each link to a file, anchors dropped."""
    out = []
    for target in links(path):
        if EXTERNAL.match(target) or target.startswith("#"):
            continue
        out.append((target, (path.parent / target.split("#", 1)[0]).resolve()))
    return out


def nav_files() -> list[str]:
    """The pages mkdocs.yml's nav lists, relative to docs/."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert Path(config["docs_dir"]) == Path("docs")
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, str):
            if not EXTERNAL.match(node):
                found.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(config["nav"])
    return found


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_that_exist(path):
    """Bug: a page or figure moved, renamed or misspelt while a link still names the old
    path (on GitHub a 404; on the site a strict-build failure). Anchors are not checked here
    (the strict build checks those of docs/ pages)."""
    assert path.read_text(encoding="utf-8").strip(), f"{path} is empty"
    broken = [target for target, file in local_links(path) if not file.exists()]
    assert not broken, f"{path.relative_to(ROOT)}: links to missing files: {broken}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_links_stay_inside_docs_and_are_relative(path):
    """Bug: a docs page linking to a file outside docs/ (`../data/README.md`) or by an
    absolute path (`/docs/x.md`): it may work on GitHub, but the site holds only docs/, so the
    link is dead there and `mkdocs build --strict` fails."""
    absolute = [t for t in links(path) if t.startswith("/")]
    assert not absolute, f"{path.relative_to(ROOT)}: absolute links: {absolute}"
    outside = [t for t, file in local_links(path) if DOCS.resolve() not in file.parents]
    assert not outside, f"{path.relative_to(ROOT)}: links leaving docs/: {outside}"


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    """Bug: a new page in docs/ left out of mkdocs.yml's nav (the site's menu never shows
    it), or a nav entry naming a page that was renamed or deleted."""
    nav = nav_files()
    pages = sorted(str(p.relative_to(DOCS)) for p in PAGES)
    assert sorted(set(nav)) == sorted(nav), f"pages listed twice in the nav: {nav}"
    assert not set(pages) - set(nav), f"pages missing from the nav: {set(pages) - set(nav)}"
    assert not set(nav) - set(pages), f"nav entries without a page: {set(nav) - set(pages)}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_page_has_one_title_on_its_first_line(path):
    """Bug: a page without a `#` title (the site shows its file name instead) or with two
    (two top-level headings in one page's table of contents)."""
    text = path.read_text(encoding="utf-8")
    titles = [line for line in FENCE.sub("", text).splitlines() if line.startswith("# ")]
    assert text.startswith("# "), f"{path.relative_to(ROOT)} does not open with a # title"
    assert len(titles) == 1, f"{path.relative_to(ROOT)}: {len(titles)} # titles: {titles}"


def test_readme_is_at_most_260_lines():
    """Bug: the README growing back into the whole manual; what is not the quick start, the
    common commands or a link belongs on a docs/ page."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section of a Markdown text, up to the next ## heading."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1).strip()


def test_quickstart_page_says_what_the_readme_says():
    """Bug: the quick start's measured output (or any of its text) updated in README.md but
    not in docs/quickstart.md, or the other way round. The two differ only in their links,
    which the README writes from the repository root (`docs/x.md`)."""
    readme = section(README.read_text(encoding="utf-8"), "Quick start")
    page = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    page = page.removeprefix("# Quick start\n").strip()
    assert readme.replace("](docs/", "](") == page


def test_configuration_page_lists_every_key_of_the_default_run():
    """Bug: a config key added to (or removed from) the schemas and YAML files while the
    configuration page's 'Every key of the default run' block still shows the old set. Only
    the keys are compared: the values there are the defaults when the block was printed."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    block = re.search(
        r"^## Every key of the default run\n.*?^```yaml\n(.*?)^```", text, re.M | re.S
    )
    assert block, "configuration.md has no yaml block under 'Every key of the default run'"
    documented = yaml.safe_load(block.group(1))
    composed = OmegaConf.to_container(compose_cfg([]), resolve=False)

    def keys(node, prefix=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield f"{prefix}{key}"
                yield from keys(value, f"{prefix}{key}.")

    missing = set(keys(composed)) - set(keys(documented))
    extra = set(keys(documented)) - set(keys(composed))
    assert not missing and not extra, (
        f"configuration.md is missing {sorted(missing)} and shows unknown {sorted(extra)}; "
        "print the current set with `python train.py --cfg job`"
    )

"""The README and the docs/ pages, checked without building the site (CI builds it too, with
`mkdocs build --strict`; these tests catch the same mistakes in a plain `pytest`)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import runpy
import shlex
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


# -- every command the README and the docs show ---------------------------------------------
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```[ \t]*$", re.M | re.S)
# commands the docs show that neither compose a config nor parse a script's options, and who
# runs them
RUN_ELSEWHERE = {
    "pip install -e": ".ci/run (the README's install command)",
    "pytest": ".ci/run (the README's test command)",
    "mkdocs build --strict": ".ci/run (the site, strict)",
    "mkdocs serve": "a person at a browser; the same pages as mkdocs build",
    "ruff": "a developer before each commit (docs/development.md)",
    "PYTHON=python3 bash scripts/gpu_check.sh": "tests/scripts/test_gpu_check.py",
    "RUN=": "a shell variable",
    "mkdir -p": "the shell",
    "export ": "the shell",
    "python3 -m pip": "the GPU machine's set-up (docs/performance.md)",
    "pip wheel": "the GPU machine's set-up (docs/performance.md)",
}


def doc_commands() -> list[tuple[str, list[str]]]:
    """(page, words) of each command in a ```bash block of the README and docs/ (a line
    continued with a backslash joined to the next; comments dropped)."""
    found = []
    for path in [README, *PAGES]:
        for block in BASH_BLOCK.findall(path.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    found.append((str(path.relative_to(ROOT)), words))
    return found


COMMANDS = doc_commands()


def first_of_sweeps(overrides: list[str]) -> list[str]:
    """Each multirun sweep `k=a,b,c` replaced by its first value `k=a`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    out = []
    for text, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            first = next(iter(override.sweep_string_iterator()))
            text = f"{override.get_key_element()}={first}"
        out.append(text)
    return out


@pytest.mark.parametrize(
    ("page", "words"), COMMANDS, ids=[f"{p}:{' '.join(w)[:60]}" for p, w in COMMANDS]
)
def test_every_command_in_the_docs_composes_or_parses(page, words):
    """Bug: a page showing a command that no longer works: an override of a key that was
    renamed, an option (experiment=..., lr_policy=...) that was removed, a value the checks
    refuse, or a script option that was dropped. train.py commands are composed and checked as
    train.py does (a sweep's first point); script commands are parsed by the script's module;
    every other command is one that CI or a named test runs."""
    from dml.cli import settle_pruning
    from dml.validation import check_config

    line = " ".join(words)
    if words[:2] == ["python", "train.py"] or words[0] == "torchrun":
        overrides = words[words.index("train.py") + 1 :]
        placeholder = re.compile(r"[<>]")  # `<overrides>`, `resume=outputs/runs/<name>/...`
        overrides = [o for o in overrides if o not in ("-m", "--multirun")]
        overrides = [o for o in overrides if not placeholder.search(o)]
        overrides = first_of_sweeps(overrides)
        optuna = importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper")
        if "optuna" in line and optuna is None:
            pytest.skip("needs the optuna extra (without it: tests/test_cli.py's one-line error)")
        cfg = compose_cfg(overrides, hydra=any(o.startswith("hydra") for o in overrides))
        settle_pruning(cfg, overrides)
        check_config(cfg)
    elif words[0] == "python" and words[1].startswith("scripts/"):
        script = ROOT / words[1]
        module = importlib.import_module(runpy.run_path(str(script))["main"].__module__)
        assert isinstance(module.parse_args(words[2:]), argparse.Namespace), line
    else:
        assert any(line.startswith(prefix) for prefix in RUN_ELSEWHERE), (
            f"{page}: `{line}` is neither a train.py nor a scripts/ command, nor one that CI "
            "or a named test runs (RUN_ELSEWHERE)"
        )


# -- files shown on a page ------------------------------------------------------------------
# a line that is only a repository path in a code span and a colon, then a fenced block
SHOWN_FILE = re.compile(r"^`([^`\s]+)`:\n\n```[a-z]*\n(.*?)^```[ \t]*$", re.M | re.S)


def shown_files() -> list[tuple[str, str, str]]:
    """(page, path, block) for every file a page shows whole."""
    return [
        (str(page.relative_to(ROOT)), path, block)
        for page in PAGES
        for path, block in SHOWN_FILE.findall(page.read_text(encoding="utf-8"))
    ]


SHOWN = shown_files()


def test_extending_page_shows_its_two_worked_examples_whole():
    """Bug: the worked examples' files dropped from docs/extending.md (or their heading lines
    reworded so that the test below silently checks nothing)."""
    shown = {path for page, path, _ in SHOWN if page == "docs/extending.md"}
    assert shown == {
        "src/dml/losses/multi_similarity.py",
        "configs/loss/multi_similarity.yaml",
        "src/dml/data/folders.py",
        "configs/dataset/folders.yaml",
    }


@pytest.mark.parametrize(("page", "path", "block"), SHOWN, ids=[f"{p}:{f}" for p, f, _ in SHOWN])
def test_a_file_shown_on_a_page_is_the_file(page, path, block):
    """Bug: a worked example edited in src/ or configs/ but not on the page (or the other way
    round): a reader copies code that is not what dml ships."""
    assert block == (ROOT / path).read_text(encoding="utf-8"), f"{page} shows an old {path}"

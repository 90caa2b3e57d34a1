"""MkDocs hooks (mkdocs.yml `hooks:`), run when the documentation site is built.

GitHub's Markdown needs a `|` inside a code span in a table cell written as `\\|`, and shows
it as `|`; Python-Markdown, which MkDocs uses, keeps the backslash. So that the same page
reads the same on GitHub and on the site, the backslash is dropped from code spans inside
tables of the built HTML.
"""

from __future__ import annotations

import re

_TABLE = re.compile(r"<table>.*?</table>", re.S)
_CODE = re.compile(r"<code>.*?</code>", re.S)


def unescape_table_pipes(html: str) -> str:
    """`\\|` -> `|` in every code span of every table of `html`; nothing else changes."""

    def in_table(table: re.Match) -> str:
        return _CODE.sub(lambda code: code.group(0).replace("\\|", "|"), table.group(0))

    return _TABLE.sub(in_table, html)


def on_page_content(html: str, **kwargs) -> str:
    return unescape_table_pipes(html)

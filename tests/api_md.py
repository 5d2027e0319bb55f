"""The 65-column table of the compatibility contract (shared/API.md section 2), parsed."""

from __future__ import annotations

import re
from pathlib import Path

API_MD = Path(__file__).resolve().parents[1] / ".." / "shared" / "API.md"
# a row of the two-sided table: | # | column | type | # | column | type |
CELL = r"\s*(\d+)\s*\|\s*([a-z_]+)\s*\|\s*([a-z \[\]]+?)\s*"
TABLE_ROW = re.compile(rf"^\|{CELL}\|(?:{CELL}\|)?")


def api_columns() -> list[tuple[str, str]]:
    """(name, type as written) of API.md section 2, in column order."""
    text = API_MD.read_text()
    section = text[text.index("## 2."):text.index("## 3.")]
    numbered: dict[int, tuple[str, str]] = {}
    for line in section.splitlines():
        match = TABLE_ROW.match(line)
        if match:
            groups = match.groups()
            for number, name, type_ in (groups[:3], groups[3:]):
                if number is not None:
                    numbered[int(number)] = (name, type_)
    return [numbered[i] for i in sorted(numbered)]


def api_names() -> list[str]:
    """The 65 column names, in order."""
    return [name for name, _ in api_columns()]

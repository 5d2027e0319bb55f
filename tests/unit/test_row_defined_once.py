"""The 65 columns are written out once: in the row type of the SQL script, nowhere in Python."""

from __future__ import annotations

import re
from pathlib import Path

from api_md import api_columns

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "migrations" / "pg_stat_monitor--2.4.sql.in"
PACKAGE = REPO / "plpy_modules" / "pgsm"
# the columns the export's rules and SQL name (see pgsm.columns), and two plain English words
RULE_COLUMNS = {"bucket", "bucket_start_time", "queryid", "query", "calls", "total_exec_time",
                "plans", "resp_calls", "bucket_done",
                # the export's ranking (pgsm.columns.RANK, the reverse of the view's order) and
                # the client of '<other>'
                "userid", "dbid", "toplevel", "top_queryid", "planid", "client_ip",
                "application_name", "elevel"}
ENGLISH = {"rows", "message"}
# the wire format of fragment batches fixes its own fields (some share a name with the row's):
# they belong to the format's version, not to the row, and other modules take them from it
WIRE_FORMAT = "transport.py"
# the libpq setting of the sender's connections (pgsm.nodes), not the column
LIBPQ = {"application_name"}


def test_the_script_defines_each_column_once() -> None:
    """Each 'name type' line of API.md section 2 occurs exactly once in the SQL script."""
    script = SCRIPT.read_text()
    counts = {name: len(re.findall(rf"^\s*{name}\s+{re.escape(type_)},?$", script, re.M))
              for name, type_ in api_columns()}
    assert {name: n for name, n in counts.items() if n != 1} == {}


def test_python_names_only_the_columns_its_rules_need() -> None:
    """The pgsm package mentions no column beyond the rules' own: it reads the rest."""
    source = "\n".join(path.read_text() for path in sorted(PACKAGE.glob("*.py"))
                       if path.name != WIRE_FORMAT)
    named = {name for name, _ in api_columns() if re.search(rf"\b{name}\b", source)}
    assert named <= RULE_COLUMNS | ENGLISH | LIBPQ

"""Test configuration: the fixtures live in fixtures.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fixtures import bucket_room, conn, make_server, server  # noqa: E402,F401
from upgrade_helpers import private_root  # noqa: E402,F401

"""pg_stat_monitor's in-database Python package.

Every module takes ``plpy`` (the PL/Python module) as an argument instead of
importing it, so it can be tested outside the server with a stand-in.
"""

from pgsm._version import __version__

__all__ = ["__version__"]

"""``instrec`` command line: a thin layer over :class:`instrec.Recognizer` and the evaluator.

Every command takes ``--home`` (or ``INSTREC_HOME``), those on one library ``--collection`` too, and
``--set section.key=value`` overrides, so defaults live only in :mod:`instrec.config`;
:mod:`instrec.cli.common` holds the output conventions.
"""

from instrec.cli import collection_commands, export_command, library_commands, tools, train_command  # noqa: F401 - registers the commands
from instrec.cli.common import app

__all__ = ["app"]

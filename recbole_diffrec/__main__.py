"""``recbole-diffrec [run|tune|evaluate|recommend|convert] ...`` (the console script) and
``python -m recbole_diffrec ...`` (the same, for example inside a virtual environment that is not activated)."""

import sys

from recbole_diffrec.environment import require_recbole


def main(argv=None):
    require_recbole("recbole-diffrec")
    from recbole_diffrec.cli import cli

    cli(sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

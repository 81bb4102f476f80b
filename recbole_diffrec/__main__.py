"""``python -m recbole_diffrec [run|tune|evaluate|recommend] ...``: the ``recbole-diffrec`` command without
its console script (for example inside a virtual environment that is not activated)."""

from recbole_diffrec.cli import cli

if __name__ == "__main__":
    cli()

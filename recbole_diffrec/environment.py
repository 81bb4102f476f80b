"""Is RecBole there, and usable? Checked by the entry points before anything imports RecBole, so a missing or
broken install ends the first command in one line with the command that fixes it. Standard library only."""

import importlib
import importlib.metadata
import sys

RECBOLE_VERSION = "1.2.1"
# RecBole's metadata pins ray<=2.6.3 (no wheels for Python 3.12+), which recbole-diffrec never imports: RecBole
# goes in without its dependencies, and recbole-diffrec's own requirements bring what RecBole needs.
FIX = (f"pip install <recbole-diffrec's folder> && pip install --no-deps recbole=={RECBOLE_VERSION} "
       "(or: bash dev.sh run, which does both)")


def recbole_problem():
    """None when RecBole 1.2.1 imports; else what is wrong, as one sentence with the fix."""
    try:
        version = importlib.metadata.version("recbole")
    except importlib.metadata.PackageNotFoundError:
        return f"RecBole is not installed; fix: {FIX}"
    if version != RECBOLE_VERSION:
        return f"recbole-diffrec needs RecBole {RECBOLE_VERSION}, found {version}; fix: {FIX}"
    try:
        for module in ("recbole.config", "recbole.data", "recbole.trainer", "recbole.utils"):
            importlib.import_module(module)
    except ImportError as err:
        return (f"RecBole {version} is installed but cannot be imported ({err}); a requirement is missing, fix: "
                f"{FIX}")
    return None


def require_recbole(prog):
    """End the command with one line and exit status 2 when RecBole cannot work."""
    problem = recbole_problem()
    if problem:
        sys.stderr.write(f"{prog}: error: {problem}\n")
        raise SystemExit(2)

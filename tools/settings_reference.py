"""Write docs/settings.md, the settings reference, from the yaml files in properties/ (the one place each
setting is declared). ``--check`` writes nothing and exits 1 when the file is stale (a test runs it).

    python tools/settings_reference.py           # regenerate
    python tools/settings_reference.py --check   # is it up to date?
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recbole_diffrec.settings import properties_dir, read_declarations  # noqa: E402

TARGET = ROOT / "docs" / "settings.md"


def files_and_readers():
    """[(file name, the models that read it)] from the registry: the trainer's file (every model), then each
    settings file of the pack's models' lineages, in the order the models (by name) first read them."""
    from recbole_diffrec.registry import model_classes
    from recbole_diffrec.settings import model_yamls

    readers = {}
    for name, cls in model_classes().items():
        if not cls.__module__.startswith("recbole_diffrec."):
            continue  # another package's model documents its own settings
        for path in model_yamls(cls):
            readers.setdefault(path.name, []).append(name)
    rows = [("trainer.yaml", "every model, recbole-diffrec's and RecBole's (the trainer's settings)")]
    return rows + [(file, ", ".join(names)) for file, names in readers.items()]


def _cell(value):
    return str(value).replace("|", "\\|")


def render():
    files = files_and_readers()
    found = {p.name for p in properties_dir().glob("*.yaml")}
    unread = found - {name for name, _ in files}
    if unread:
        raise SystemExit(f"tools/settings_reference.py: {sorted(unread)} are read by no model of the registry")
    lines = [
        "# Settings reference",
        "",
        "Generated from `properties/*.yaml` by `python tools/settings_reference.py`; do not edit by hand (a test",
        "fails when this file and the yaml files disagree). Give any setting as `--key=value` on the command",
        "line, in a yaml file passed with `--config_files`, or in `config_dict` from Python. RecBole's own",
        "settings (`epochs`, `learning_rate`, `topk`, ...) are documented by RecBole; the model files below set",
        "some of them to the paper's values.",
        "",
        "*May change on*: a resumed run (`--resume`) or the evaluation of a saved model (`recbole-diffrec",
        "evaluate`/`recommend`) may set these keys differently from the training run; any other key that",
        "differs is refused with the value the checkpoint was trained with.",
        "",
    ]
    for name, readers in files:
        lines += [f"## `{name}`", "", f"Read by: {readers}.", "",
                  "| key | default | type | may change on | description |", "|---|---|---|---|---|"]
        for d in read_declarations(properties_dir() / name).values():
            when = ", ".join(sorted(d.may_change)) or ""
            lines.append(f"| `{d.key}` | `{_cell(d.default)}` | {_cell(d.type)} | {when} | {_cell(d.doc)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/settings.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text() if TARGET.is_file() else ""
        if current != text:
            print(f"{TARGET} is stale: run python tools/settings_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The package's shape: imports run one way, the core stands alone, each setting is declared once."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_diffrec.registry import model_classes
from recbole_diffrec.settings import (
    WHEN,
    declarations,
    properties_dir,
    read_declarations,
)

PACKAGE = Path(__file__).resolve().parent.parent / "recbole_diffrec"


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node):
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree, modules, here):
    """The package's modules a module imports explicitly, at any depth (inside functions too), except
    under ``if TYPE_CHECKING:``. ``from a import b`` counts as importing a.b when that is a module."""
    found = set()

    def visit(node):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{here}: relative import (the package imports absolutely)"
            base = node.module
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.add(f"{base}.{alias.name}")
                elif base in modules:
                    found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(here)
    return found


def import_graph():
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(ast.parse(path.read_text()), set(files), name) for name, path in files.items()}


def find_cycle(graph):
    """One cycle of the graph as a list of nodes, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 20 and "recbole_diffrec.core.diffusion" in graph
    assert "recbole_diffrec.config" in graph["recbole_diffrec.preparation"]  # the graph sees real edges
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_core_and_networks_import_nothing_but_torch_and_numpy():
    """The layers below the models know nothing of RecBole, even through the package's own modules."""
    graph = import_graph()
    for name in ("recbole_diffrec.core", "recbole_diffrec.networks"):
        reach, todo = set(), [m for m in graph if m.startswith(name)]
        while todo:
            module = todo.pop()
            if module not in reach:
                reach.add(module)
                todo.extend(graph[module])
        outside = {m for m in reach if not m.startswith(("recbole_diffrec.core", "recbole_diffrec.networks"))}
        assert not outside, f"{name} reaches {outside}"


def test_the_core_imports_in_a_fresh_interpreter_without_recbole_or_numpy_patches():
    code = ("import sys, numpy\n"
            "from recbole_diffrec.core.diffusion import GaussianDiffusion\n"
            "import recbole_diffrec.networks\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('recbole', 'scipy', 'pandas')))\n"
            "print(hasattr(numpy, 'float_'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "False", out


def test_creating_a_config_applies_recboles_fixes(workdir):
    """The other side of the core's independence: the entry points still apply the fixes."""
    code = ("import numpy\n"
            "from recbole_diffrec.config import Config\n"
            "Config(model='DiffRec', dataset='ml-100k', config_dict={'show_progress': False})\n"
            "print(numpy.float_ is numpy.float64)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    assert out.strip().endswith("True")


def test_every_key_is_declared_once_along_each_models_lineage():
    """A model's files (trainer.yaml, then its lineage's) declare each key once; a variant may set a base's
    key again only to change its default (L-DiffRec's values for DiffRec's keys)."""
    from recbole_diffrec.settings import model_yamls, trainer_yaml

    seen = {}
    for path in sorted(properties_dir().glob("*.yaml")):
        for key in read_declarations(path):
            seen.setdefault(key, []).append(path.name)
    assert seen["w_min"] == ["TimeWeighting.yaml"] and seen["ema_decay"] == ["trainer.yaml"]
    overrides = {"dims_dnn", "noise_max", "beta_fixed", "learning_rate"}
    for name, cls in model_classes().items():
        files = [trainer_yaml(), *model_yamls(cls)]
        keys = [key for path in files for key in read_declarations(path)]
        twice = {k for k in keys if keys.count(k) > 1} - overrides
        assert not twice, (name, twice)


@pytest.mark.parametrize("name", sorted(model_classes()))
def test_every_declaration_has_a_type_and_a_description(name):
    for key, declaration in declarations(model_classes()[name]).items():
        assert declaration.type and declaration.doc, key
        assert declaration.may_change <= set(WHEN)


def test_a_key_without_its_comment_or_with_an_unknown_occasion_is_refused(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("steps: 40\n")
    with pytest.raises(ValueError, match="key: value   # \\(type\\) Description"):
        read_declarations(bare)
    odd = tmp_path / "odd.yaml"
    odd.write_text("steps: 40    # (int; may change on sunday) Steps.\n")
    with pytest.raises(ValueError, match="may change on' takes resume, evaluate"):
        read_declarations(odd)
    good = tmp_path / "good.yaml"
    good.write_text("# a comment\nsteps: 40    # (int; may change on evaluate) Steps (T).\n")
    (declaration,) = read_declarations(good).values()
    assert (declaration.default, declaration.type, declaration.doc) == (40, "int", "Steps (T).")
    assert declaration.may_change == {"evaluate"}


def test_which_keys_may_change_is_read_from_the_declarations():
    from recbole_diffrec.models import DiffRec
    from recbole_diffrec.settings import may_change

    assert may_change(DiffRec, "resume") == {"eval_batch_users", "resume_every", "train_precision",
                                             "inference_steps", "input_path"}
    assert may_change(DiffRec, "evaluate") == may_change(DiffRec, "resume") | {"sampling_steps", "sampling_noise"}


def test_the_settings_reference_is_generated_from_the_yaml_files(tmp_path, monkeypatch):
    sys.path.insert(0, str(PACKAGE.parent / "tools"))
    try:
        import settings_reference
    finally:
        sys.path.pop(0)
    assert settings_reference.main(["--check"]) == 0, "docs/settings.md is stale: run python tools/settings_reference.py"
    text = settings_reference.render()
    assert "| `w_min` | `0.1` | float |" in text and text.count("`w_min`") == 1
    stale = tmp_path / "settings.md"
    stale.write_text(text.replace("0.1", "0.2"))
    monkeypatch.setattr(settings_reference, "TARGET", stale)
    assert settings_reference.main(["--check"]) == 1


def test_one_diffusion_recipe_and_a_short_api_module():
    """Both model families read the Gaussian diffusion's settings through one function; no model module defines
    a Transformer layer; the Python API module stays about the size of RecBole's quick_start."""
    import inspect

    from recbole_diffrec.models import base, diffurec, dnr

    reader = "read_gaussian_diffusion("
    assert reader in inspect.getsource(base.DiffusionRecommender.read_settings)
    assert reader in inspect.getsource(dnr.DNR.read_settings) and reader in inspect.getsource(diffurec.DiffuRec)
    for path in (PACKAGE / "models").glob("*.py"):
        assert "TransformerEncoderLayer" not in path.read_text() and "MultiheadAttention" not in path.read_text(), path
    assert len((PACKAGE / "pipeline.py").read_text().splitlines()) < 200


def test_public_functions_of_the_core_networks_and_models_are_annotated():
    """Every public function and method (and __init__) of core/, networks/ and models/ annotates its
    arguments, and its return value unless it is __init__."""
    bare = []
    for sub in ("core", "networks", "models"):
        for path in sorted((PACKAGE / sub).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.FunctionDef) or (node.name.startswith("_") and node.name != "__init__"):
                    continue
                args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
                if any(a.annotation is None for a in args) or (node.returns is None and node.name != "__init__"):
                    bare.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not bare, bare

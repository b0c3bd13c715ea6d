"""The package's structure: no import cycles (imports inside functions count), one backend registry."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "policyclf"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != mod and t.startswith("policyclf"):
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_even_inside_functions():
    graph = import_graph()
    assert "policyclf.scoring" in graph["policyclf.batch"]  # the graph sees real edges
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_one_scoring_module_for_every_command():
    graph = import_graph()
    for mod in ("policyclf.predict", "policyclf.batch", "policyclf.ray_engine", "policyclf.protocol",
                "policyclf.evaluation", "policyclf.active"):
        assert "policyclf.scoring" in graph[mod], mod


def test_backends_are_listed_once():
    from policyclf.config import load_config
    from policyclf.errors import ConfigError
    from policyclf.models.registry import BACKENDS, backend_class

    assert set(BACKENDS) == {"tfidf", "bert", "distilled", "ensemble"}
    assert backend_class("tfidf").__name__ == "TfidfClassifier"
    with pytest.raises(ConfigError, match="unknown backend 'svm'"):
        load_config(None, {"model.backend": "svm"})
    hits = [p for p in SRC.rglob("*.py") if '("tfidf", "bert")' in p.read_text(encoding="utf-8")]
    assert hits == []


def test_config_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    from policyclf.config import dump_config, load_config

    (tmp_path / "proj" / "configs").mkdir(parents=True)
    cfg_path = tmp_path / "proj" / "configs" / "x.toml"
    cfg_path.write_text('[data]\nannotations = ["../data/a.jsonl"]\n')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(cfg_path)
    assert cfg.resolve(cfg.data.annotations[0]) == (tmp_path / "proj" / "data" / "a.jsonl").resolve()
    (tmp_path / "proj" / "models" / "m").mkdir(parents=True)
    dump_config(cfg, tmp_path / "proj" / "models" / "m" / "config.toml")
    moved = load_config(tmp_path / "proj" / "models" / "m" / "config.toml")
    assert moved.resolve(moved.data.annotations[0]).resolve() == (tmp_path / "proj" / "data" / "a.jsonl").resolve()


def test_readme_module_map_matches_the_code():
    readme = (SRC.parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- modules:start -->")[1].split("<!-- modules:end -->")[0]
    listed = {line.split("`")[1] for line in block.splitlines() if line.startswith("| `")}
    actual = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py")}
    assert listed == actual


def test_shipped_configs_leave_precision_to_the_hardware():
    """An explicit bfloat16 would be emulated (~10x slower) on CPUs without native bf16."""
    from policyclf.config import load_config

    root = SRC.parents[1]
    paths = [root / "configs" / "default.toml", *sorted((root / "configs" / "select").glob("*.toml")),
             *sorted((root / "models").glob("*/config.toml"))]
    assert len(paths) >= 3
    for path in paths:
        cfg = load_config(path)
        assert cfg.model.inference_dtype == "auto", path
        # the one exception: the bf16-against-fp32 experiment of the selection protocol (issue 21)
        want = "bfloat16" if path.stem == "bert-top4-bf16-v1" else "auto"
        assert cfg.training.precision == want, path
        for f in cfg.data.annotations:
            assert cfg.resolve(f).is_file(), (path, f)

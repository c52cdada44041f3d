"""The documentation: the README's quickstart and the guide's marked examples run as written, and
the MkDocs site builds with no warnings (strict: broken links and anchors, unknown API names and
bad docstrings fail)."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_quickstart_runs(capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Quickstart\n\n```python\n(.*?)```", text, re.S)
    assert block, "README.md has no ## Quickstart python block"
    exec(compile(block.group(1), "README.md quickstart", "exec"), {})
    out = capsys.readouterr().out
    assert "torch.Size([100, 32, 20])" in out


def test_readme_stays_short_and_speaks_of_the_software():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert not re.search(r"\bsession\b", text, re.I)


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    cmd = [mkdocs] if mkdocs else [sys.executable, "-m", "mkdocs"]
    res = subprocess.run(cmd + ["build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    anchors = set(re.findall(r'id="(neurodyn\.[\w.]+)"', api))
    # every public name (each subpackage's __all__) has its entry in the generated reference;
    # a function named like its module is documented under the module's path
    missing = [f"{pkg}.{name}" for pkg, names in _public_names().items() for name in names
               if f"{pkg}.{name}" not in anchors and f"{pkg}.{name}.{name}" not in anchors]
    assert not missing, f"public names without an API reference entry: {missing}"


def _public_names() -> dict[str, list[str]]:
    out = {}
    subs = sorted(d.name for d in (ROOT / "neurodyn").iterdir() if (d / "__init__.py").is_file())
    for sub in ["errors", *subs]:
        mod = importlib.import_module(f"neurodyn.{sub}")
        out[f"neurodyn.{sub}"] = list(getattr(mod, "__all__", []))
    return out


# Code blocks in the guide marked with an HTML comment on the line before the fence,
# ``<!-- run -->`` (or ``<!-- run requires=nir,torchdiffeq -->`` for optional packages), are
# executed in order, one namespace per page, in a scratch folder where ``datasets/`` and
# ``configs/`` are the repository's: the examples in the docs use the API as it is.
_RUN_BLOCK = re.compile(r"^<!-- run(?: requires=([\w,.-]+))? -->\n```python\n(.*?)^```", re.S | re.M)


def _runnable_pages() -> list[Path]:
    return sorted(p for p in (ROOT / "docs").rglob("*.md") if _RUN_BLOCK.search(p.read_text()))


def test_guide_has_runnable_examples():
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in _runnable_pages()}
    assert {"guide/concepts.md", "guide/event-core.md", "guide/fused-training.md", "guide/neurons.md",
            "guide/delays.md", "guide/early-exit.md", "guide/ode-solvers.md", "guide/export.md",
            "guide/data.md"} <= pages


@pytest.mark.parametrize("page", _runnable_pages(), ids=lambda p: p.relative_to(ROOT / "docs").as_posix())
def test_doc_examples_run(page, tmp_path, monkeypatch):
    for folder in ("datasets", "configs"):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__doc_example__"}
    for i, (requires, code) in enumerate(_RUN_BLOCK.findall(page.read_text())):
        missing = [m for m in filter(None, requires.split(",")) if importlib.util.find_spec(m) is None]
        if missing:  # this block and the ones after it (which may build on it) need an optional package
            pytest.skip(f"{page.name} block {i + 1} needs {', '.join(missing)} (the blocks before it ran)")
        src = tmp_path / f"{page.stem}_block{i + 1}.py"  # a real file: inspect.getsource works on its functions
        src.write_text(code)
        exec(compile(code, str(src), "exec"), namespace)

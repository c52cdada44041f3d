"""Run the benchmark suite: ``python -m benchmarks [name ...] [--quick] [--threads N] [--list]``.

A benchmark is any module ``benchmarks/<name>.py`` that defines ``main(argv: list[str] | None) -> str``
and accepts ``--quick``.  Each runs in its own Python process (isolated memory readings, a crash
or a leak does not touch the others); a failing one is reported and the rest still run, and the
exit status is non-zero at the end if any failed.  Tables and plots go to benchmarks/results/
(or $NEURODYN_BENCH_RESULTS).  Arguments after ``--`` go to every benchmark run.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELPERS = {"common", "plots", "lif_models"}  # modules of the suite that are not benchmarks


@dataclass
class Outcome:
    name: str
    ok: bool
    seconds: float
    detail: str = ""
    files: list[str] = field(default_factory=list)


def discover(folder: Path = HERE) -> dict[str, str]:
    """{name: one-line description} of the benchmark modules in folder, found without importing
    them (a module with a syntax error or a missing peer still shows up, and fails when run)."""
    found = {}
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if name.startswith("_") or name in HELPERS:
            continue
        try:
            src = path.read_text()
        except OSError:
            continue
        if not re.search(r"^def main\(", src, re.M):
            continue
        try:
            doc = ast.get_docstring(ast.parse(src)) or ""
        except SyntaxError as e:
            doc = f"(does not parse: {e.msg}, line {e.lineno})"
        found[name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return found


def _module_args(name: str, quick: bool, threads: int | None, extra: list[str]) -> list[str]:
    args = ["--quick"] if quick else []
    path = HERE / f"{name}.py"
    src = path.read_text() if path.is_file() else ""
    if threads is not None and "--threads" in src:
        args += ["--threads", str(threads)]
    return args + extra


def _results_dir() -> Path:
    return Path(os.environ.get("NEURODYN_BENCH_RESULTS") or HERE / "results")


def _written(manifest: Path) -> list[str]:
    """Result files the benchmark wrote (recorded by common._atomic_write in the manifest)."""
    try:
        return sorted(set(manifest.read_text().split()))
    except OSError:
        return []


_CHILD = ("import sys\n"
          "from benchmarks.common import set_threads\n"
          "n = int(sys.argv[2])\n"
          "if n > 0: set_threads(n)\n"
          "mod = __import__('benchmarks.' + sys.argv[1], fromlist=['main'])\n"
          "mod.main(sys.argv[3:])\n")


def run_one(name: str, args: list[str], threads: int | None, in_process: bool, timeout: float | None) -> Outcome:
    """Run benchmark ``name`` with ``args``; never raises for a failing benchmark."""
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="neurodyn_bench_") as tmp:
        manifest = Path(tmp) / "written.txt"
        ok, detail = (_in_process if in_process else _subprocess)(name, args, threads, timeout, manifest)
        return Outcome(name, ok, time.time() - t0, detail, _written(manifest))


def _in_process(name, args, threads, timeout, manifest) -> tuple[bool, str]:
    old = os.environ.get("NEURODYN_BENCH_MANIFEST")
    os.environ["NEURODYN_BENCH_MANIFEST"] = str(manifest)
    try:
        if threads is not None:
            from .common import set_threads
            set_threads(threads)
        mod = __import__(f"benchmarks.{name}", fromlist=["main"])
        mod.main(args)
    except SystemExit as e:  # argparse errors inside a benchmark
        if e.code not in (0, None):
            return False, f"exit {e.code}"
    except Exception as e:
        traceback.print_exc()
        return False, f"{type(e).__name__}: {e}".splitlines()[0][:200]
    finally:
        if old is None:
            os.environ.pop("NEURODYN_BENCH_MANIFEST", None)
        else:
            os.environ["NEURODYN_BENCH_MANIFEST"] = old
    return True, ""


def _subprocess(name, args, threads, timeout, manifest) -> tuple[bool, str]:
    env = dict(os.environ)
    env["NEURODYN_BENCH_MANIFEST"] = str(manifest)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, "-c", _CHILD, name, str(threads or 0), *args]
    try:
        rc = subprocess.run(cmd, cwd=HERE.parent, env=env, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    return rc == 0, "" if rc == 0 else f"exit status {rc}"


def summary(outcomes: list[Outcome]) -> str:
    lines = ["", "benchmark summary:", f"  {'name':<22} {'status':<8} {'seconds':>8}  tables / notes"]
    for o in outcomes:
        what = ", ".join(f for f in o.files if f.endswith((".md", ".png"))) or "-"
        lines.append(f"  {o.name:<22} {'ok' if o.ok else 'FAILED':<8} {o.seconds:>8.1f}  "
                     f"{what}{'  ' + o.detail if o.detail else ''}")
    failed = [o.name for o in outcomes if not o.ok]
    lines.append(f"{len(outcomes) - len(failed)} ok, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    lines.append(f"results in {_results_dir()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="benchmarks to run (default: all; see --list)")
    ap.add_argument("--quick", action="store_true", help="small sizes for CI-like machines")
    ap.add_argument("--threads", type=int, help="torch and Numba threads in every benchmark (default: each "
                                                "benchmark's own, 1 for the speed benchmarks)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--in-process", action="store_true", help="run in this process instead of one process each")
    ap.add_argument("--timeout", type=float, help="seconds allowed per benchmark (subprocess mode)")
    a = ap.parse_args(argv)
    found = discover()
    if a.list:
        for name, doc in found.items():
            print(f"{name:<22} {doc}")
        return 0
    unknown = [n for n in a.names if n not in found]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(found)}", file=sys.stderr)
        return 2
    if a.threads is not None and a.threads < 1:
        print("--threads must be >= 1", file=sys.stderr)
        return 2
    names = a.names or list(found)
    outcomes = []
    for name in names:
        print(f"=== {name} {'(quick) ' if a.quick else ''}===", flush=True)
        o = run_one(name, _module_args(name, a.quick, a.threads, extra), a.threads, a.in_process, a.timeout)
        if not o.ok:
            print(f"=== {name} FAILED: {o.detail}", flush=True)
        outcomes.append(o)
    print(summary(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

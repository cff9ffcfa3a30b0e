"""How long each notebook takes to run top to bottom on this machine (not a test; output
committed under benchmarks/results/).

Each notebook in notebooks/ is executed in a fresh kernel with nbclient, as
tests/notebooks does, one after the other; the wall-clock seconds of the whole run, the
slowest cell, the 1-minute load average before and after and the CPU count are recorded. The
machine may be shared: a run whose load average exceeds the CPU count says so in `loaded`.

    python -m benchmarks.notebooks [--only 01_quickstart,04_relevance_patching] \\
        [--out benchmarks/results/notebooks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_notebook(path: Path, timeout: int = 3600) -> dict:
    """Execute `path` in a fresh kernel of this interpreter; its wall-clock and slowest cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=_kernel(), allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    cells = [c for c in nb.cells if c.cell_type == "code"]
    durations = [_cell_seconds(c) for c in cells]
    slowest = max(range(len(cells)), key=lambda i: durations[i]) if cells else None
    load_after = os.getloadavg()[0]
    return {"notebook": path.name, "seconds": round(seconds, 1), "code_cells": len(cells),
            "slowest_cell": slowest, "slowest_cell_seconds": round(durations[slowest], 1) if cells else None,
            "load_before": round(load_before, 2), "load_after": round(load_after, 2),
            "loaded": max(load_before, load_after) > (os.cpu_count() or 1)}


def _cell_seconds(cell) -> float:
    """A cell's run time from the timestamps nbclient records in its metadata."""
    from datetime import datetime

    t = cell.metadata.get("execution", {})
    a, b = t.get("iopub.execute_input"), t.get("shell.execute_reply")
    if not (a and b):
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(b) - parse(a)).total_seconds()


def _kernel() -> str:
    """A kernel spec that starts this interpreter, first on JUPYTER_PATH (as tests/notebooks)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="interp-nb-bench-"))
    spec = root / "kernels" / "interp-bench-python"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "interp benchmark", "language": "python"}))
    os.environ["JUPYTER_PATH"] = f"{root}{os.pathsep}{os.environ.get('JUPYTER_PATH', '')}"
    return "interp-bench-python"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=None, help="comma-separated notebook stems (default: every notebook)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "notebooks.json"),
                   help="JSON file to write (atomically)")
    args = p.parse_args(argv)
    paths = sorted((REPO / "notebooks").glob("*.ipynb"))
    if args.only:
        wanted = args.only.split(",")
        unknown = [w for w in wanted if not (REPO / "notebooks" / f"{w}.ipynb").is_file()]
        if unknown:
            p.error(f"--only: no notebook {unknown[0]!r}; notebooks: {', '.join(q.stem for q in paths)}")
        paths = [q for q in paths if q.stem in wanted]
    from interp.atomic import write_bytes

    rows = []
    for path in paths:
        rows.append(run_notebook(path))
        print(json.dumps(rows[-1]), flush=True)
    out = {"cpus": os.cpu_count(), "threads_env": os.environ.get("OMP_NUM_THREADS"), "notebooks": rows}
    write_bytes(Path(args.out), (json.dumps(out, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What a benchmark report says about the machine and the builds it measured.

Shared by every side-by-side benchmark under bench/ (ann, trees): the CPU,
the versions of the peer libraries, and which engine build each worker
actually loaded (the native module can be rebuilt while a long run goes on).
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version


def import_engine(attempts: int = 10, wait_s: float = 30.0):
    """``import engine``, waiting out a rebuild of the native module in progress."""
    for attempt in range(attempts):
        try:
            return importlib.import_module("engine")
        except ImportError as e:
            if attempt == attempts - 1:
                raise
            print(f"import engine failed ({e}); retrying in {wait_s:.0f} s", file=sys.stderr, flush=True)
            time.sleep(wait_s)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def distribution_versions(distributions) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    out = {}
    for dist in distributions:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def system_info(distributions) -> dict:
    """The report header's facts: CPU, Python, engine build and peer versions."""
    engine = import_engine()
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "engine_version": engine.__version__,
            "engine_build_info": engine.build_info(),
            "versions": distribution_versions(distributions)}


def engine_build_line(info: dict) -> str:
    """One markdown line: the engine's SIMD level, compiler and version."""
    bi = info["engine_build_info"]
    return (f"- **engine SIMD: `{bi['simd']}`**"
            + (f", kernels `{bi['kernels']}`" if bi.get("kernels") else "")
            + (f", forest kernels `{bi['forest_kernels']}`" if bi.get("forest_kernels") else "")
            + f" (supported: {', '.join(bi['simd_supported'])}; "
            f"compiler {bi['compiler']}; rank-engine {info['engine_version']})")


def cpu_line(info: dict) -> str:
    return f"- **CPU: {info['cpu']}** ({info['cpus']} logical CPUs); every library single-threaded"


def loaded_engine_build(engine) -> dict:
    """Which engine build this process loaded; call at import, as the file may be replaced later."""
    return {"native_module": native_module_stamp(engine), "source_head": source_head(engine)}


def native_module_stamp(engine) -> str:
    """Path and mtime of the engine's native module as loaded, to spot a rebuild between workers."""
    path = getattr(engine._core, "__file__", "?")
    try:
        return f"{path} ({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(os.path.getmtime(path)))} UTC)"
    except OSError:
        return path


def source_head(engine) -> str:
    """The engine source tree's commit (``-dirty`` if it has local changes)."""
    src = os.path.dirname(os.path.dirname(os.path.abspath(engine.__file__)))
    try:
        return subprocess.run(["git", "-C", src, "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"

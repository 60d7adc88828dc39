"""Print the pip requirements of the fedchain image, one per line, from pyproject.toml.

The runtime dependencies (``[project].dependencies``) plus the build backend
(``[build-system].requires``), so the image and the CI wheelhouse install exactly
what the package declares and nothing is listed twice. Standard library only: it runs
on the bare base image and on the host.

Usage: python docker/requirements.py [PYPROJECT]   (default ./pyproject.toml)
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path) -> list[str]:
    """Return the runtime and build requirements declared in ``pyproject``."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    runtime = list(data.get("project", {}).get("dependencies", []))
    build = list(data.get("build-system", {}).get("requires", []))
    return runtime + build


def main(argv: list[str]) -> int:
    """Write the requirement lines to stdout; exit 2 with one line if the file is unusable."""
    path = Path(argv[1]) if len(argv) > 1 else Path("pyproject.toml")
    try:
        lines = requirements(path)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"requirements: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    if not lines:
        print(f"requirements: {path} declares no dependencies", file=sys.stderr)
        return 2
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env bash
# Create a separate virtualenv with Flower 1.42.0 for bench/round_overhead.py (idempotent).
#
# flwr 1.42.0 pins versions that clash with fedchain's venv (fastapi<0.139, protobuf<7,
# typer<0.21, rich<15), so it lives in its own venv: .ci/cache/flwr-venv (or $FLWR_VENV).
# Its declared requirements are installed first, then flwr itself with --no-deps because
# it asks for a certifi release newer than some indexes hold. torch is NOT installed a second
# time: a .pth file appends fedchain's venv site-packages to the Flower venv's sys.path, so
# the Flower apps import the very same torch (and fedchain.shared.fl.models) as fedchain. Packages
# installed in the Flower venv come first on sys.path and win over fedchain's versions.
# Prints the venv's python path on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VENV=${FLWR_VENV:-$ROOT/.ci/cache/flwr-venv}
MAIN_PY=${FEDCHAIN_PYTHON:-$ROOT/.venv/bin/python}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
stamp=$VENV/.flwr-1.42.0-installed
if [ -f "$stamp" ] && "$VENV/bin/python" -c 'import flwr, torch' >/dev/null 2>&1; then
  echo "$VENV/bin/python"; exit 0
fi
[ -x "$MAIN_PY" ] || { echo "flower setup: fedchain venv not found at $MAIN_PY (run scripts/bootstrap first)" >&2; exit 1; }
echo "flower setup: creating $VENV with flwr 1.42.0 (about a minute)..." >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
NUMPY=$("$MAIN_PY" -c 'import numpy; print(numpy.__version__)')
"$VENV/bin/pip" install -q \
  "certifi>=2026.10.18" "numpy==$NUMPY" "grpcio>=1.70.0,<2.0.0" "grpcio-health-checking>=1.70.0,<2.0.0" \
  "protobuf>=5.28.0,<7.0.0" "cryptography>=50.0.0,<51.0.0" "pycryptodome>=3.18.0,<4.0.0" \
  "iterators>=0.0.2,<0.0.3" "typer>=0.13.0,<0.21.0" "uv>=0.13.5,<0.14.0" "tomli>=2.0.1,<3.0.0" \
  "tomli-w>=1.0.0,<2.0.0" "pathspec>=1.0.4,<2.0.0" "prompt-toolkit>=3.0.52,<4.0.0" "rich>=14.0.0,<15.0.0" \
  "pyyaml>=6.0.2,<7.0.0" "requests>=2.33.0,<3.0.0" "httpx>=0.28.1,<1.0.0" "click>=8.0.0,<9.0.0" \
  "packaging>=24.0,<26.0" "sqlalchemy[asyncio]>=2.0.45,<3.0.0" "alembic>=1.18.1,<2.0.0" \
  "uvicorn[standard]>=0.49.0,<0.50.0" "fastapi>=0.138.0,<0.139.0" "starlette>=1.3.1,<1.4.0" >&2
"$VENV/bin/pip" install -q --no-deps flwr==1.42.0 >&2
MAIN_SITE=$("$MAIN_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# an "import" line in a .pth runs at start-up: addsitedir appends fedchain's site-packages
# (and processes its .pth files, so the editable fedchain install is importable too)
echo "import site; site.addsitedir('$MAIN_SITE')" > "$SITE/zz-fedchain-main-venv.pth"
"$VENV/bin/python" -c 'import flwr, torch, fedchain.shared.tensors' >&2
touch "$stamp"
echo "$VENV/bin/python"

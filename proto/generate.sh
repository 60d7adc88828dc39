#!/usr/bin/env bash
# Regenerate the Python gRPC code of every proto/*.proto into shared/rpc/ (messages,
# stubs and .pyi type hints), with the generated imports made package-relative.
# Needs grpcio-tools (in the test extras): ./proto/generate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p shared/rpc
"$PY" -m grpc_tools.protoc -Iproto --python_out=shared/rpc --grpc_python_out=shared/rpc \
  --pyi_out=shared/rpc proto/*.proto
for proto in proto/*.proto; do
  name=$(basename "$proto" .proto)
  # "import x_pb2 as x__pb2" -> "from . import x_pb2 as x__pb2"
  sed -i -E 's/^import ([A-Za-z0-9_]+_pb2) as /from . import \1 as /' "shared/rpc/${name}_pb2_grpc.py" "shared/rpc/${name}_pb2.py" \
    "shared/rpc/${name}_pb2.pyi"
done
echo "generated: $(cd shared/rpc && ls ./*_pb2*.py* | tr '\n' ' ')"

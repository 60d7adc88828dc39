"""Model transfer over fedchain's gRPC chunked path vs raw loopback TCP, and the tensor
codec (fedchain.shared.tensors.encode/decode) vs a plain memory copy -- as ratios, in one run.

Transport (the server always runs in a separate process, as between two nodes):
  * fedchain path: ``Node.FetchModel`` as the nodes serve and read it: frames written by
    ``fedchain.shared.net.streams.model_frames`` (registered by ``add_node_servicer``), read
    with ``fetch_model`` + ``join_model_chunks`` (size bound and SHA-256 digest checked), over
    channels and servers made by ``fedchain.shared.net.grpc_util`` with the default ``chunk_kb``;
  * bare grpcio: a server-streaming method that yields the same chunk size, no digest;
  * raw TCP: ``sendall`` of the payload over a loopback socket into a preallocated buffer.
Codec: ``encode(state)`` vs ``clone()`` of every tensor; ``decode(bytes, expected=state)``
(header, shapes, dtypes, finiteness checked) vs ``bytearray(bytes)``.
Throughputs and ratios use the best of the repeats (the machine is shared: the best run is
the least disturbed one); medians are in the JSON too.

Usage: python bench/transfer.py [--quick] [--results DIR] [--plots DIR]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import BenchError, charts, control, models, paths, results, stats

from fedchain.shared.processes import free_port

BARE_METHOD = "/fcbench.Bare/Fetch"


# ---------------------------------------------------------------- server side (child process)


def serve_grpc(port: int, payload_file: Path, chunk_bytes: int) -> None:
    """Serve the payload both through fedchain's Node.FetchModel and a bare stream method."""
    import grpc

    from fedchain.shared.config import Settings
    from fedchain.shared.digests import digest_of
    from fedchain.shared.net.grpc_util import NetConfig, make_server
    from fedchain.shared.net.streams import add_node_servicer, model_frames
    from fedchain.shared.rpc import node_pb2_grpc

    data = payload_file.read_bytes()
    digest_of(data)  # a node hashes each model once, when it keeps it

    class FetchOnly(node_pb2_grpc.NodeServicer):  # type: ignore[misc]
        def FetchModel(self, request: Any, context: Any) -> Iterator[bytes]:
            return model_frames(data, chunk_bytes)

    def bare(request: bytes, context: Any) -> Iterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(data), chunk_bytes):
            yield bytes(view[start : start + chunk_bytes])

    net = NetConfig.from_settings(Settings(max_message_mb=max(64, len(data) // 2**20 + 1)))
    server = make_server(net, "127.0.0.1", port, workers=4)
    add_node_servicer(FetchOnly(), server)
    handler = grpc.method_handlers_generic_handler(
        "fcbench.Bare",
        {"Fetch": grpc.unary_stream_rpc_method_handler(bare, lambda b: b, lambda b: b)},
    )
    server.add_generic_rpc_handlers((handler,))
    server.start()
    server.wait_for_termination(timeout=3600)


def serve_socket(port: int, payload_file: Path) -> None:
    """Answer each one-byte request on a loopback TCP connection with the whole payload."""
    data = payload_file.read_bytes()
    with socket.socket() as srv:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(4)
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            conn, _ = srv.accept()
            with conn:
                while conn.recv(1):
                    conn.sendall(data)


# ---------------------------------------------------------------- client side


def _start_server(group: control.ProcessGroup, kind: str, payload_file: Path, chunk_bytes: int) -> int:
    port = free_port()
    group.start(f"{kind}-server", [sys.executable, __file__, f"--serve-{kind}", str(port),
                                   "--payload", str(payload_file), "--chunk-bytes", str(chunk_bytes)])

    def listening() -> bool:
        group.check_alive()
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    control.wait_until(listening, 60, f"the {kind} benchmark server on port {port}")
    return port


def time_fedchain_grpc(port: int, size: int, repeats: int) -> list[float]:
    """Seconds per FetchModel over fedchain's channel, digest and size checked."""
    from fedchain.shared.config import Settings
    from fedchain.shared.net.grpc_util import NetConfig, make_channel
    from fedchain.shared.net.streams import fetch_model, join_model_chunks
    from fedchain.shared.rpc import node_pb2 as pb

    net = NetConfig.from_settings(Settings(max_message_mb=max(64, size // 2**20 + 1)))
    with make_channel(net, f"127.0.0.1:{port}") as channel:

        def fetch() -> None:
            stream = fetch_model(channel, pb.FetchModelRequest(version=1), timeout=120)
            got = join_model_chunks(stream, size + 1)
            if len(got) != size:
                raise BenchError(f"fedchain gRPC fetch returned {len(got)} of {size} bytes")

        return stats.time_repeated(fetch, repeats)


def time_bare_grpc(port: int, size: int, repeats: int) -> list[float]:
    """Seconds per bare grpcio server stream of the same chunks (no digest, no protobuf)."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_stream(BARE_METHOD, request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)

        def fetch() -> None:
            buf = bytearray()
            for piece in call(b"", timeout=120):
                buf.extend(piece)
            if len(buf) != size:
                raise BenchError(f"bare gRPC fetch returned {len(buf)} of {size} bytes")

        return stats.time_repeated(fetch, repeats)


def time_raw_socket(port: int, size: int, repeats: int) -> list[float]:
    """Seconds per payload read from a loopback TCP socket into a preallocated buffer."""
    buf = bytearray(size)
    view = memoryview(buf)
    with socket.create_connection(("127.0.0.1", port)) as conn:

        def fetch() -> None:
            conn.sendall(b"g")
            got = 0
            while got < size:
                n = conn.recv_into(view[got:], min(size - got, 1 << 22))
                if n == 0:
                    raise BenchError("raw socket closed early")
                got += n

        return stats.time_repeated(fetch, repeats)


def measure_transport(payload: bytes, chunk_bytes: int, repeats: int, work: Path) -> dict[str, Any]:
    """Throughput of the three transports for one payload size."""
    payload_file = work / f"payload-{len(payload)}.bin"
    payload_file.write_bytes(payload)
    size = len(payload)
    out: dict[str, Any] = {"bytes": size, "chunk_bytes": chunk_bytes, "repeats": repeats}
    with control.ProcessGroup(work / "logs") as group:
        gport = _start_server(group, "grpc", payload_file, chunk_bytes)
        sport = _start_server(group, "socket", payload_file, chunk_bytes)
        for name, fn, port in (("fedchain_grpc", time_fedchain_grpc, gport),
                               ("bare_grpc", time_bare_grpc, gport),
                               ("raw_socket", time_raw_socket, sport)):
            secs = fn(port, size, repeats)
            s = stats.summarize(secs)
            out[name] = {"seconds": s.as_dict(), "gb_per_s": size / s.minimum / 1e9,
                         "gb_per_s_median": size / s.median / 1e9}
    raw = out["raw_socket"]["gb_per_s"]
    out["ratio_fedchain_vs_raw"] = out["fedchain_grpc"]["gb_per_s"] / raw
    out["ratio_bare_grpc_vs_raw"] = out["bare_grpc"]["gb_per_s"] / raw
    out["ratio_fedchain_vs_bare_grpc"] = out["fedchain_grpc"]["gb_per_s"] / out["bare_grpc"]["gb_per_s"]
    return out


def measure_codec(state: dict[str, Any], repeats: int) -> dict[str, Any]:
    """encode vs clone and decode vs bytearray copy for one state dict."""
    from fedchain.shared.tensors import decode, encode

    data = encode(state)
    size = len(data)
    enc = stats.summarize(stats.time_repeated(lambda: encode(state), repeats))
    clone = stats.summarize(stats.time_repeated(lambda: {k: v.clone() for k, v in state.items()}, repeats))
    dec = stats.summarize(stats.time_repeated(lambda: decode(data, expected=state), repeats))
    copy = stats.summarize(stats.time_repeated(lambda: bytearray(data), repeats))
    def rate(x: stats.Summary) -> dict[str, Any]:
        return {"seconds": x.as_dict(), "gb_per_s": size / x.minimum / 1e9, "gb_per_s_median": size / x.median / 1e9}

    return {
        "bytes": size,
        "tensors": len(state),
        "repeats": repeats,
        "encode": rate(enc),
        "clone": rate(clone),
        "decode": rate(dec),
        "bytes_copy": rate(copy),
        "ratio_encode_vs_clone": enc.minimum / clone.minimum,
        "ratio_decode_vs_copy": dec.minimum / copy.minimum,
        "ratio_encode_vs_clone_median": enc.median / clone.median,
        "ratio_decode_vs_copy_median": dec.median / copy.median,
    }


def synthetic_state(total_bytes: int) -> dict[str, Any]:
    """float32 tensors of 4 MiB each adding up to about ``total_bytes`` (a large model)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    per = 1 << 20  # floats per tensor
    count = max(1, total_bytes // (per * 4))
    return {f"layer{i}.weight": torch.randn(per, generator=gen) for i in range(count)}


def run(quick: bool, results_dir: Path, plots_dir: Path) -> dict[str, Any]:
    """Run every measurement, write JSON and PNG, print the tables; return the result."""
    import torch

    from fedchain.shared.config import Settings
    from fedchain.shared.tensors import encode

    torch.set_num_threads(1)
    chunk_bytes = Settings().chunk_kb * 1024
    model = models.build_mnist_cnn()
    model_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    big = 16 * 2**20 if quick else 64 * 2**20
    repeats_t = 5 if quick else 15
    repeats_c = 5 if quick else 20
    cases = {"mnist_cnn": model_state, f"synthetic_{big >> 20}MiB": synthetic_state(big)}
    result: dict[str, Any] = {"quick": quick, "transport": {}, "codec": {}}
    with tempfile.TemporaryDirectory(prefix="fcbench-transfer-") as tmp:
        for name, state in cases.items():
            result["transport"][name] = measure_transport(encode(state), chunk_bytes, repeats_t, Path(tmp))
            result["codec"][name] = measure_codec(state, repeats_c)
    path = results.write_json("transfer", result, results_dir)

    rows = []
    for name, t in result["transport"].items():
        rows.append([name, f"{t['bytes'] / 1e6:.1f}", t["fedchain_grpc"]["gb_per_s"], t["bare_grpc"]["gb_per_s"],
                     t["raw_socket"]["gb_per_s"], f"{t['ratio_fedchain_vs_raw']:.3f}x"])
    results.print_table("Model transfer over loopback (GB/s, best of the repeats)",
                       ["payload", "MB", "fedchain gRPC", "bare gRPC", "raw TCP", "fedchain/raw"], rows)
    rows = []
    for name, c in result["codec"].items():
        rows.append([name, f"{c['bytes'] / 1e6:.1f}", c["encode"]["gb_per_s"], c["clone"]["gb_per_s"],
                     f"{c['ratio_encode_vs_clone']:.2f}x", c["decode"]["gb_per_s"], c["bytes_copy"]["gb_per_s"],
                     f"{c['ratio_decode_vs_copy']:.2f}x"])
    results.print_table("Tensor codec vs memory copy (GB/s, best of the repeats; ratio = codec time / copy time)",
                       ["state", "MB", "encode", "clone", "enc/clone", "decode", "copy", "dec/copy"], rows)

    biggest = list(result["transport"])[-1]
    t = result["transport"][biggest]
    c = result["codec"][biggest]
    charts.bar_chart(plots_dir / "transfer.png",
                     ["fedchain gRPC", "bare gRPC", "raw TCP", "encode", "clone", "decode", "bytes copy"],
                     [t["fedchain_grpc"]["gb_per_s"], t["bare_grpc"]["gb_per_s"], t["raw_socket"]["gb_per_s"],
                      c["encode"]["gb_per_s"], c["clone"]["gb_per_s"], c["decode"]["gb_per_s"],
                      c["bytes_copy"]["gb_per_s"]],
                     ylabel="GB/s (log)", log=True,
                     title=f"Transfer and codec throughput, {t['bytes'] / 1e6:.0f} MB payload, loopback, 1 thread")
    print(f"wrote {path} and {plots_dir / 'transfer.png'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a minute: fewer repeats, 16 MiB large case")
    parser.add_argument("--results", type=Path, default=paths.RESULTS_DIR, help="where transfer.json goes")
    parser.add_argument("--plots", type=Path, default=paths.PLOTS_DIR, help="where transfer.png goes")
    parser.add_argument("--serve-grpc", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-socket", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--payload", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chunk-bytes", type=int, default=1 << 20, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    control.exit_on_sigterm()
    if args.serve_grpc:
        serve_grpc(args.serve_grpc, args.payload, args.chunk_bytes)
        return 0
    if args.serve_socket:
        serve_socket(args.serve_socket, args.payload)
        return 0
    try:
        run(args.quick, args.results, args.plots)
    except BenchError as exc:
        print(f"transfer: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

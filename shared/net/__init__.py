"""Networking helpers shared by SN and EN: gRPC channels/servers (TLS, size bounds), chunked streams, signing."""

"""A peer of the hybrid P2P network: shares one folder over gRPC and registers with the directory."""
import os

# gRPC core prints a line of its own for every failed TLS handshake; our error already says
# what failed in one line (peer_node/tls.py). Before grpc is first imported; the user's setting wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

"""A peer of the hybrid P2P network: shares one folder over gRPC and registers with the directory."""

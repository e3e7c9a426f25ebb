"""`python -m peer_node` runs the same click group as the `p2p` console script."""
from peer_node.cli import main

if __name__ == "__main__":
    main()

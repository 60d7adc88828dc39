"""Node plumbing that the super node and the edge node share: peers, metrics, keys, stop flag, addresses."""

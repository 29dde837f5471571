"""Payment upstreams (one client per service): Crypto Pay for wallet top-ups."""

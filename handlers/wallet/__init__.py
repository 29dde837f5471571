"""The wallet: balance, history, promo codes."""

"""Rentals: /rent, "My rentals" (/rentals), a rental's card with Extend and Refund."""

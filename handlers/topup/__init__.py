"""Topping up the wallet: Telegram Stars and Crypto Pay."""

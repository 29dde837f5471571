"""Buying a number: the menus from service to route, the confirm screen, Pay."""

"""The composition root's parts: one short module per concern, each a `create_*` function.

`bot.app.build_app` calls them in order; only this package knows the concrete classes.
"""

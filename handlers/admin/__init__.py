"""The owner's panel and the admin commands, one router per area."""

"""Sending SMS: recipients, text, confirm, live delivery statuses."""

"""A customer's orders: the list, the order card and its buttons."""

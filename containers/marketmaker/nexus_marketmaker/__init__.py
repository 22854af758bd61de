"""The NexusTrade market maker (containers/marketmaker)."""

"""NexusTrade shared kernel, shipped as the common Lambda layer."""

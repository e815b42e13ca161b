"""Data: sources (fetch and verify), format readers, datasets, data modules, shifts."""

"""The `gflowout` command line."""

"""The JupyterHub side: configuration, tiered spawners and the hub service."""

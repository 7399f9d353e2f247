"""The demo project and its local mail sink."""

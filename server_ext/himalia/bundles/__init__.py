"""Bundles: a project's definitions, versioned, signed and carried from a design instance to production.

``format`` writes and verifies the file (store-free); ``definitions`` is what a bundle holds;
``service`` creates, imports, compares and activates bundles over the store.
"""

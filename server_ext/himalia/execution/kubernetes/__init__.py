"""The Kubernetes executor and the entry point of its step pods."""

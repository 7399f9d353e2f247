"""The processes that serve the control plane: the server extension and ``himalia serve``."""

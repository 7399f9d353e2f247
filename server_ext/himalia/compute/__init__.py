"""Hardware tiers and their Kubernetes quantities, shared by the hub and execution."""

"""Policy authority: bundle loading, compilation, immutable snapshots and reconciliation."""

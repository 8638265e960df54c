"""What the runtime writes and the operator side reads, in one place both import: canonical JSON
(JCS), Ed25519 key material, receipts and their hash chain, signed policy bundles and evidence
packs. Pure functions over bytes and dicts: no HTTP, no store, no settings.

The runtime (``helm_runbook.runtime``) and the operator tools both build on this package, so a
verifier can never drift from what the runtime signs.
"""

"""The public transparency log of the track record: an RFC 9162 Merkle tree over the ledger's
entries, C2SP signed checkpoints and tiles, witnesses' cosignatures, and proofs that one
forecast is in the log (inclusion) and that a later log extends an earlier one (consistency)."""

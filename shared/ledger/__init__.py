"""The ledger as every part reaches it: its errors (and, next, its typed contract)."""

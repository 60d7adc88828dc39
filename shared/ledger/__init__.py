"""The ledger as every part reaches it: the typed contract (``contract``), its results
(``results``), its errors (``errors``), and the gRPC client with its wire form (``client``,
``wire``). The embedded store is ``fedchain.services.ledger.store``."""

"""Anomaly-detection methods behind one contract (see ``base.py`` and docs/adding-a-method.md).

Each name is imported from its own module: the contract from :mod:`.base`, the lookup
(``get_method``, ``load_method``, ``register_method``) from :mod:`.registry`."""

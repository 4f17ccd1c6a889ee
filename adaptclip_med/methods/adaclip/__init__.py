"""AdaCLIP in one folder (``--method adaclip``): the contract in ``method.py``, the network in
``network.py`` / ``vision.py`` / ``text.py``, its releases and weights in ``releases.py``,
``catalog.py`` and ``weights.py``.

Nothing is imported here (each name has one import path), so the torch-free ``catalog`` can be read
without loading the network.
"""

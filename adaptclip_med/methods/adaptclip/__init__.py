"""AdaptCLIP in one folder: the network (``network.py``, ``adapters.py``, ``fusion.py``), its weights
(``checkpoints.py``, ``release_import.py``, ``release.py``, ``catalog.py``, the demo alias
``demo_weights.py``), its training (``trainer.py``, ``losses.py``, ``feature_cache.py``,
``training_config.py``) and the method contract (``method.py``, which registers ``--method adaptclip``).

Nothing is imported here (each name has one import path, its module's), so the torch-free
``catalog`` can be read without loading the network.
"""

"""WinCLIP in one folder (``--method winclip``): the contract in ``method.py``, the numbers in
``model.py``, windows in ``windows.py``, text in ``prompts.py``.  Nothing is imported here (the
registry imports ``method.py``)."""

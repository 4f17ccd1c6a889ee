"""The AI node: a DICOM Storage SCP a PACS routes studies to, scoring each complete study once
and storing the results back into the same study (``adaptclip-med node``, docs/deploy-pacs.md).

One module per job: :mod:`.config` (the node's settings file), :mod:`.receiver` (the SCP and its
allow-list), :mod:`.spool` (received instances on disk, atomically, under pseudonymous names),
:mod:`.store` (the durable SQLite queue: one row per study and its state), :mod:`.worker`
(quiet period, scoring through batch's single-study path, sending), :mod:`.sender` (C-STORE of the
results), :mod:`.service` (runs it all, stops cleanly on SIGTERM) and :mod:`.status` (``node status``).
"""

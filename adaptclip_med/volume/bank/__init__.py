"""Reference banks on disk: the format, opening and matching (reader), the folders (list, rename,
delete), the build lock and file stamps.  Building one (encode, calibrate, fingerprint) runs the
slice step, so it sits a floor up, in :mod:`adaptclip_med.volume.bank_builder`."""

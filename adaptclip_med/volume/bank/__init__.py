"""Reference banks: normal scans encoded once, stored on disk, matched slice by slice."""

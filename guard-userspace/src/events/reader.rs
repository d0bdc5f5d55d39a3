//! Ring-buffer reader (filled in with the loader).

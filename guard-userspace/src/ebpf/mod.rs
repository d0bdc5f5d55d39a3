//! Loading and attaching the kernel programs.

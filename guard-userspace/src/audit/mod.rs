//! Audit log: one JSON line per destructive command (issue 4).

//! Destructive-command rules (issue 4).

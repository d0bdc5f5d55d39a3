//! Process table and agent attribution (issue 4).

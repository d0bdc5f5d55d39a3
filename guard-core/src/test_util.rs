//! Helpers shared by the unit tests.

/// An argv from string literals.
pub(crate) fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

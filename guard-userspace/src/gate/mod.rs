pub(crate) mod caller;
pub(crate) mod fanotify;
pub(crate) mod mounts;

#[cfg(test)]
mod tests;

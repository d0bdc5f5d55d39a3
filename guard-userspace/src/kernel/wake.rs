//! Which exec records wake the reader at once: those of programs that can start a rule match,
//! whose cwd the daemon reads before a short-lived command is gone. The others wait for the
//! reader's 20 ms drain (issue 16: a wake-up of the reader and the engine per exec was most of
//! the daemon's cost per exec).

use aya::maps::lpm_trie::{Key, LpmTrie};
use guard_common::{event::COMM_LEN, maps};
use guard_core::rules::RuleSet;

use super::Kernel;

impl Kernel {
    /// Fills the kernel's `WAKE_NAMES` from the rules; when they cannot be listed (or do not
    /// fit), every exec wakes the reader, as before.
    pub(crate) fn wake_on(&mut self, rules: &RuleSet) {
        let Some(map) = self.ebpf.map_mut(maps::WAKE_NAMES) else { return };
        let Ok(mut trie) = LpmTrie::<_, [u8; COMM_LEN], u8>::try_from(map) else { return };
        let keys: Vec<Key<[u8; COMM_LEN]>> = match rules.run_names() {
            Some(names) => names.map(|(name, prefix)| comm_key(name, prefix)).collect(),
            None => vec![Key::new(0, [0; COMM_LEN])],
        };
        let fits = keys.iter().all(|k| trie.insert(k, 1, 0).is_ok());
        if !fits {
            tracing::warn!(names = keys.len(), "exec wake-up filter full: every exec wakes the reader");
            let _ = trie.insert(&Key::new(0, [0; COMM_LEN]), 1, 0);
        }
    }
}

/// The trie key of a program name as `comm` holds it: at most 15 bytes, then NUL. An exact name
/// includes its NUL; a prefix, or a name the kernel truncates, does not.
fn comm_key(name: &str, prefix: bool) -> Key<[u8; COMM_LEN]> {
    let mut data = [0u8; COMM_LEN];
    let b = name.as_bytes();
    let n = b.len().min(COMM_LEN - 1);
    data[..n].copy_from_slice(&b[..n]);
    let bytes = if prefix || b.len() >= COMM_LEN - 1 { n } else { n + 1 };
    Key::new((bytes * 8) as u32, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cover_the_name_and_its_nul_unless_a_prefix_or_truncated() {
        let k = comm_key("rm", false);
        assert_eq!((k.prefix_len(), k.data()[..3].to_vec()), (24, b"rm\0".to_vec()));
        assert_eq!(comm_key("mkfs.", true).prefix_len(), 40);
        assert_eq!(comm_key("clickhouse-client", false).prefix_len(), 120);
    }
}

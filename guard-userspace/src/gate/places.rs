//! The kernel's copy of the places list (`PLACES`, an LPM trie: see guard_common::delete), kept
//! equal to the list the engine classifies with, so that what the kernel kills and what the
//! audit says agree.

use std::collections::HashMap;

use aya::maps::{
    MapData,
    lpm_trie::{Key, LpmTrie},
};
use guard_common::{
    delete::{PLACE_KEY_LEN, PLACES_MAX, PlaceValue},
    event::PATH_LEN,
};

pub(crate) struct PlacesWriter {
    map: LpmTrie<MapData, [u8; PLACE_KEY_LEN], PlaceValue>,
    current: HashMap<Vec<u8>, PlaceValue>,
}

/// One prefix as the kernel matches it: absolute, ending with `/`, shorter than `PATH_LEN`.
fn key(prefix: &[u8]) -> Option<Key<[u8; PLACE_KEY_LEN]>> {
    if prefix.first() != Some(&b'/') || prefix.last() != Some(&b'/') || prefix.len() >= PATH_LEN {
        return None;
    }
    let mut data = [0u8; PLACE_KEY_LEN];
    data[..prefix.len()].copy_from_slice(prefix);
    Some(Key::new((prefix.len() * 8) as u32, data))
}

/// Prefixes to remove, and prefixes to insert with their values.
type Diff<'a> = (Vec<&'a [u8]>, Vec<(&'a [u8], PlaceValue)>);

/// What to remove and what to insert to go from `current` to `wanted`.
fn diff<'a>(current: &'a HashMap<Vec<u8>, PlaceValue>, wanted: &'a HashMap<Vec<u8>, PlaceValue>) -> Diff<'a> {
    let gone = current.keys().filter(|k| !wanted.contains_key(*k)).map(Vec::as_slice).collect();
    let new = wanted.iter().filter(|(k, v)| current.get(*k) != Some(v)).map(|(k, v)| (k.as_slice(), *v)).collect();
    (gone, new)
}

impl PlacesWriter {
    pub(crate) fn new(map: LpmTrie<MapData, [u8; PLACE_KEY_LEN], PlaceValue>) -> Self {
        Self { map, current: HashMap::new() }
    }

    /// Brings the kernel's list to `wanted`. A prefix the kernel cannot hold (too long, not
    /// absolute) is left out and logged: the engine still classifies with it, the kernel does not
    /// enforce it.
    pub(crate) fn sync(&mut self, wanted: impl IntoIterator<Item = (String, PlaceValue)>) {
        let mut want = HashMap::new();
        for (prefix, v) in wanted {
            if want.len() >= PLACES_MAX as usize {
                tracing::warn!(max = PLACES_MAX, "too many places for the kernel: the rest are not enforced");
                break;
            }
            want.insert(prefix.into_bytes(), v);
        }
        let (gone, new) = diff(&self.current, &want);
        for k in gone {
            if let Some(key) = key(k) {
                let _ = self.map.remove(&key);
            }
        }
        for (k, v) in new {
            match key(k) {
                Some(key) => {
                    if let Err(e) = self.map.insert(&key, v, 0) {
                        tracing::warn!(prefix = %String::from_utf8_lossy(k), error = %e, "a place could not be given to the kernel");
                    }
                }
                None => tracing::debug!(prefix = %String::from_utf8_lossy(k), "a place the kernel cannot match (too long or not absolute)"),
            }
        }
        self.current = want;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use super::*;

    fn v(place: u8) -> PlaceValue {
        PlaceValue { place, protect: 0, _pad: 0, owner: 0 }
    }

    #[test]
    fn keys_are_absolute_slash_ended_prefixes_in_bits() {
        let k = key(b"/tmp/").unwrap();
        assert_eq!(k.prefix_len(), 40);
        assert_eq!(&k.data()[..5], b"/tmp/");
        assert!(key(b"tmp/").is_none());
        assert!(key(b"/tmp").is_none());
        assert!(key(&[b'/'; PATH_LEN]).is_none());
    }

    #[test]
    fn diff_removes_what_went_and_inserts_what_is_new_or_changed() {
        let current: HashMap<Vec<u8>, PlaceValue> = [(b"/a/".to_vec(), v(1)), (b"/b/".to_vec(), v(2)), (b"/c/".to_vec(), v(3))].into();
        let wanted: HashMap<Vec<u8>, PlaceValue> = [(b"/b/".to_vec(), v(2)), (b"/c/".to_vec(), v(4)), (b"/d/".to_vec(), v(5))].into();
        let (gone, mut new) = diff(&current, &wanted);
        new.sort_by_key(|(k, _)| k.to_vec());
        assert_eq!(gone, vec![b"/a/".as_slice()]);
        assert_eq!(new, vec![(b"/c/".as_slice(), v(4)), (b"/d/".as_slice(), v(5))]);
    }
}

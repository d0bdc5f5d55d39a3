//! Where a path lies: one list of path prefixes, each a [`Place`], that the daemon gives both the
//! kernel (the `PLACES` longest-prefix trie: `prefix` bytes, `prefix.len() * 8` bits, a
//! [`guard_common::delete::PlaceValue`]) and the engine (a recorded fact, so a replay classifies
//! as the run did). The rule is the kernel's: the longest prefix the path starts with wins; a
//! work tree is the deleter's own only if its owner is the deleter's agent; no match is
//! [`Place::Outside`]. Unlike the kernel, the engine first normalises `.`, `..` and `//`.

use serde::{Deserialize, Serialize};

pub use guard_common::delete::{Place, PlaceValue};

/// One prefix of the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceRoot {
    /// Absolute, normalised, ends with `/`.
    pub prefix: String,
    #[serde(with = "place_name")]
    pub place: Place,
    /// An agent's deletion here is killed when deletions are enforced.
    #[serde(default)]
    pub protect: bool,
    /// For a work tree: the agent's root tgid (its [`crate::process::AgentRef`] pid).
    #[serde(default)]
    pub owner: u32,
    /// A protected directory named in the config (`~/.ssh`, ...): one deletion there is audited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
}

impl PlaceRoot {
    /// The value the kernel's trie holds for this prefix.
    pub fn value(&self) -> PlaceValue {
        PlaceValue { place: self.place as u8, protect: u8::from(self.protect), _pad: 0, owner: self.owner }
    }
}

/// Where a path was found to lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    pub place: Place,
    pub protect: bool,
    pub sensitive: bool,
}

impl Placed {
    pub const UNKNOWN: Self = Self { place: Place::Unknown, protect: false, sensitive: false };
}

/// The list, longest prefix first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Places {
    roots: Vec<PlaceRoot>,
}

impl Places {
    /// Sorts `roots` longest first; of two equal prefixes the first given is kept.
    pub fn new(mut roots: Vec<PlaceRoot>) -> Self {
        roots.retain(|r| r.prefix.starts_with('/') && r.prefix.ends_with('/'));
        roots.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let mut seen = std::collections::HashSet::new();
        roots.retain(|r| seen.insert(r.prefix.clone()));
        Self { roots }
    }

    pub fn roots(&self) -> &[PlaceRoot] {
        &self.roots
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The place of an absolute `path` deleted by a process of the agent whose root tgid is
    /// `deleter_root`. A relative path (or an empty list) is [`Place::Unknown`].
    pub fn classify(&self, path: &str, deleter_root: u32) -> Placed {
        let Some(path) = normalize(path) else {
            return Placed::UNKNOWN;
        };
        if self.roots.is_empty() {
            return Placed::UNKNOWN;
        }
        let Some(r) = self.roots.iter().find(|r| path.starts_with(r.prefix.as_str())) else {
            return Placed { place: Place::Outside, protect: false, sensitive: false };
        };
        let place = match r.place {
            Place::Worktree if r.owner != deleter_root => Place::OtherRepo,
            p => p,
        };
        Placed { place, protect: r.protect, sensitive: r.sensitive }
    }
}

/// `path` with `.`, `..` and repeated `/` resolved lexically (`..` at the root stays at the
/// root); `None` unless it is absolute. A trailing `/` is kept.
pub fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = String::with_capacity(path.len());
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() || (path.ends_with('/') && !parts.is_empty()) {
        out.push('/');
    }
    Some(out)
}

/// A relative `path` joined with the process's `cwd`; an absolute one as is.
pub fn join(cwd: Option<&str>, path: &str) -> Option<String> {
    if path.starts_with('/') {
        return Some(path.to_owned());
    }
    let cwd = cwd.filter(|c| c.starts_with('/'))?;
    Some(format!("{}/{path}", cwd.trim_end_matches('/')))
}

/// The `where` name of a place (metrics, audit, config).
pub const fn place_str(p: Place) -> &'static str {
    match p {
        Place::Unknown => "unknown",
        Place::Worktree => "worktree",
        Place::Temp => "temp",
        Place::Cache => "cache",
        Place::Home => "home",
        Place::System => "system",
        Place::OtherRepo => "other_repo",
        Place::Outside => "outside",
    }
}

/// The place a name means (`place_str`'s inverse).
pub fn place_from_str(s: &str) -> Option<Place> {
    Place::ALL.into_iter().find(|p| place_str(*p) == s)
}

/// A place serialised by its name.
pub mod place_name {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use super::{Place, place_from_str, place_str};

    pub fn serialize<S: Serializer>(p: &Place, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(place_str(*p))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Place, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        place_from_str(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown place `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(prefix: &str, place: Place, owner: u32) -> PlaceRoot {
        PlaceRoot { prefix: prefix.into(), place, protect: place == Place::Home, owner, sensitive: prefix.ends_with(".ssh/") }
    }

    fn places() -> Places {
        Places::new(vec![
            root("/", Place::Outside, 0),
            root("/var/", Place::System, 0),
            root("/var/tmp/", Place::Temp, 0),
            root("/tmp/", Place::Temp, 0),
            root("/home/dev/", Place::Home, 0),
            root("/home/dev/.ssh/", Place::Home, 0),
            root("/home/dev/.cache/", Place::Cache, 0),
            root("/home/dev/src/app/", Place::Worktree, 42),
            root("/home/dev/src/lib/", Place::Worktree, 77),
        ])
    }

    #[test]
    fn the_longest_prefix_wins() {
        let p = places();
        assert_eq!(p.classify("/var/tmp/x", 42).place, Place::Temp);
        assert_eq!(p.classify("/var/lib/dpkg/status", 42).place, Place::System);
        assert_eq!(p.classify("/home/dev/.cache/pip/x", 42).place, Place::Cache);
        assert_eq!(p.classify("/home/dev/notes.txt", 42).place, Place::Home);
        let ssh = p.classify("/home/dev/.ssh/id_ed25519", 42);
        assert!(ssh.sensitive && ssh.protect && ssh.place == Place::Home, "{ssh:?}");
        assert!(!p.classify("/home/dev/notes.txt", 42).sensitive);
    }

    #[test]
    fn a_work_tree_is_the_deleters_own_only() {
        let p = places();
        assert_eq!(p.classify("/home/dev/src/app/target/x.o", 42).place, Place::Worktree);
        assert_eq!(p.classify("/home/dev/src/lib/src/lib.rs", 42).place, Place::OtherRepo);
        assert_eq!(p.classify("/home/dev/src/lib/src/lib.rs", 77).place, Place::Worktree);
        // The prefix ends with `/`: a sibling that shares its name's start is not inside.
        assert_eq!(p.classify("/home/dev/src/app2/x", 42).place, Place::Home);
    }

    #[test]
    fn dot_dot_is_resolved_before_matching() {
        let p = places();
        assert_eq!(p.classify("/home/dev/src/app/../../.ssh/config", 42).place, Place::Home);
        assert!(p.classify("/home/dev/src/app/../../.ssh/config", 42).sensitive);
        assert_eq!(p.classify("/tmp/../etc/passwd", 42).place, Place::Outside);
        assert_eq!(p.classify("//tmp/./x", 42).place, Place::Temp);
        assert_eq!(p.classify("/../../tmp/x", 42).place, Place::Temp);
    }

    #[test]
    fn no_match_is_outside_and_a_relative_path_is_unknown() {
        let only_home = Places::new(vec![root("/home/dev/", Place::Home, 0)]);
        assert_eq!(only_home.classify("/opt/x", 1).place, Place::Outside);
        assert_eq!(only_home.classify("x/y", 1).place, Place::Unknown);
        assert_eq!(Places::default().classify("/home/dev/x", 1).place, Place::Unknown);
    }

    #[test]
    fn relative_paths_join_the_cwd() {
        let p = places();
        let path = join(Some("/home/dev/src/app/"), "../lib/Cargo.toml").unwrap_or_default();
        assert_eq!(p.classify(&path, 42).place, Place::OtherRepo);
        assert_eq!(join(None, "x"), None);
        assert_eq!(join(Some("relative"), "x"), None);
        assert_eq!(join(None, "/abs").as_deref(), Some("/abs"));
    }

    #[test]
    fn normalising_keeps_the_root_and_a_trailing_slash() {
        assert_eq!(normalize("/").as_deref(), Some("/"));
        assert_eq!(normalize("/..").as_deref(), Some("/"));
        assert_eq!(normalize("/a/b/../c/").as_deref(), Some("/a/c/"));
        assert_eq!(normalize("a/b"), None);
    }

    #[test]
    fn a_root_serialises_its_place_by_name_and_gives_the_kernel_its_value() {
        let r = root("/home/dev/src/app/", Place::Worktree, 42);
        let json = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(json, r#"{"prefix":"/home/dev/src/app/","place":"worktree","protect":false,"owner":42}"#);
        assert_eq!(serde_json::from_str::<PlaceRoot>(&json).ok(), Some(r.clone()));
        assert!(serde_json::from_str::<PlaceRoot>(r#"{"prefix":"/","place":"moon"}"#).is_err());
        assert_eq!(r.value(), PlaceValue { place: 1, protect: 0, _pad: 0, owner: 42 });
        for p in Place::ALL {
            assert_eq!(place_from_str(place_str(p)), Some(p));
        }
    }
}

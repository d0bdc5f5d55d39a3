//! The catalog's answer for a program image, remembered. Matching an exec against every glob of
//! the catalog (names, install paths, interpreters) was a quarter of the daemon loop's CPU in a
//! perf profile of an exec loop, and real hosts exec the same few programs over and over.

use std::collections::HashMap;

use super::agents::Catalog;

/// Images remembered before the cache starts over: a bound on memory, not a tuning knob.
const MAX_IMAGES: usize = 4096;

#[derive(Clone, Copy)]
enum Seen {
    /// Not an interpreter: the answer depends on the executable and `argv[0]` only.
    Program(Option<usize>),
    /// An interpreter: the answer depends on its script, so it is matched each time.
    Interpreter,
}

#[derive(Default)]
pub(crate) struct Images {
    /// Executable path (or "") → `argv[0]` → what the catalog said.
    by_exe: HashMap<String, HashMap<String, Seen>>,
    len: usize,
}

impl Images {
    /// [`Catalog::identify`], from memory when the image was seen before.
    pub(crate) fn identify(&mut self, catalog: &Catalog, exe: Option<&str>, argv: &[String]) -> Option<usize> {
        let (path, arg0) = (exe.unwrap_or(""), argv.first().map_or("", String::as_str));
        match self.by_exe.get(path).and_then(|m| m.get(arg0)) {
            Some(Seen::Program(id)) => return *id,
            Some(Seen::Interpreter) => return catalog.identify(exe, argv),
            None => {}
        }
        let (id, interpreter) = catalog.identify_image(exe, argv);
        let seen = if interpreter { Seen::Interpreter } else { Seen::Program(id) };
        if self.len >= MAX_IMAGES {
            self.by_exe.clear();
            self.len = 0;
        }
        self.by_exe.entry(path.to_owned()).or_default().insert(arg0.to_owned(), seen);
        self.len += 1;
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::argv;

    #[test]
    fn remembered_answers_equal_the_catalogs() {
        let (c, mut images) = (Catalog::builtin(), Images::default());
        let cases = [
            (Some("/usr/local/bin/claude"), argv(&["claude", "-p", "x"])),
            (Some("/usr/bin/true"), argv(&["true"])),
            (Some("/usr/bin/node"), argv(&["node", "/usr/lib/node_modules/@openai/codex/bin/codex.js"])),
            (Some("/usr/bin/node"), argv(&["node", "/srv/app/server.js"])),
            (None, argv(&["codex"])),
        ];
        for _ in 0..2 {
            for (exe, a) in &cases {
                assert_eq!(images.identify(&c, *exe, a), c.identify(*exe, a), "{exe:?} {a:?}");
            }
        }
        // The interpreter's two scripts gave two answers through one remembered image.
        assert!(c.identify(Some("/usr/bin/node"), &cases[2].1).is_some());
        assert_eq!(c.identify(Some("/usr/bin/node"), &cases[3].1), None);
    }

    #[test]
    fn the_cache_starts_over_at_its_bound() {
        let (c, mut images) = (Catalog::builtin(), Images::default());
        for i in 0..=MAX_IMAGES {
            images.identify(&c, Some(&format!("/bin/p{i}")), &argv(&["p"]));
        }
        assert_eq!(images.len, 1);
        assert_eq!(images.identify(&c, Some("/usr/local/bin/claude"), &argv(&["claude"])), c.identify(Some("/usr/local/bin/claude"), &argv(&["claude"])));
    }
}

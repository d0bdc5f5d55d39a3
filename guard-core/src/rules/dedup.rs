//! Counts each destructive action once. A `bash -c 'rm -rf x'` matches on the shell's exec and
//! again on the child `rm` exec with the same normalised argv; the first sighting is kept and
//! repeats within a short window, from the same scope (e.g. the agent), are suppressed.

use std::collections::{HashMap, VecDeque};

use super::Match;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    scope: u64,
    rule_id: String,
    command: Vec<String>,
}

pub struct Dedup {
    window_ns: u64,
    cap: usize,
    seen: HashMap<Key, u64>,
    order: VecDeque<(u64, Key)>,
    /// Sightings suppressed as repeats.
    pub suppressed: u64,
}

impl Dedup {
    /// `window_ns`: how long a sighting suppresses repeats (a few seconds covers fork + exec).
    pub fn new(window_ns: u64, cap: usize) -> Self {
        Self {
            window_ns,
            cap: cap.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
            suppressed: 0,
        }
    }

    /// True the first time `(scope, rule, normalised command)` is seen within the window.
    /// `scope` groups sightings that may repeat each other: use the agent's process key, or the
    /// uid when there is no agent.
    pub fn first_sighting(&mut self, scope: u64, m: &Match, now_ns: u64) -> bool {
        self.expire(now_ns);
        let key = Key {
            scope,
            rule_id: m.rule_id.clone(),
            command: m.command.clone(),
        };
        if let Some(&at) = self.seen.get(&key)
            && now_ns.saturating_sub(at) <= self.window_ns
        {
            self.suppressed += 1;
            return false;
        }
        if self.seen.len() >= self.cap
            && let Some((_, old)) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(key.clone(), now_ns);
        self.order.push_back((now_ns, key));
        true
    }

    fn expire(&mut self, now_ns: u64) {
        while let Some((at, _)) = self.order.front() {
            if now_ns.saturating_sub(*at) <= self.window_ns {
                break;
            }
            if let Some((at, key)) = self.order.pop_front()
                && self.seen.get(&key) == Some(&at)
            {
                self.seen.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Context, RuleSet};

    fn matches(argv: &[&str]) -> Vec<Match> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let ctx = Context {
            cwd: Some("/home/dev/proj".into()),
            home: Some("/home/dev".into()),
            worktree: None,
        };
        RuleSet::builtin().check(&argv, &ctx)
    }

    #[test]
    fn shell_string_and_child_exec_count_once() {
        let mut d = Dedup::new(5_000_000_000, 64);
        let shell = matches(&["bash", "-c", "cd /srv && sudo rm -rf /srv/data"]);
        let child = matches(&["rm", "-rf", "/srv/data"]);
        assert_eq!(shell.len(), 1);
        assert_eq!(child.len(), 1);
        assert!(d.first_sighting(7, &shell[0], 1_000));
        assert!(!d.first_sighting(7, &child[0], 2_000));
        assert_eq!(d.suppressed, 1);
        // Another agent, or the same command much later, counts again.
        assert!(d.first_sighting(8, &child[0], 3_000));
        assert!(d.first_sighting(7, &child[0], 10_000_000_000));
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = Dedup::new(u64::MAX, 4);
        let m = &matches(&["git", "push", "-f"])[0];
        for scope in 0..100 {
            assert!(d.first_sighting(scope, m, 1));
        }
        assert!(d.seen.len() <= 4);
    }
}

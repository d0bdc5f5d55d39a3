use std::collections::HashMap;

use guard_core::govern::User;

use super::*;

fn host() -> Host {
    let user = |name: &str, home: &str| User { name: name.into(), home: Some(home.into()) };
    let users = HashMap::from([
        (0, user("root", "/root")),
        (1, user("daemon", "/usr/sbin")),
        (1000, user("dev", "/home/dev")),
        (65534, user("nobody", "/nonexistent")),
    ]);
    Host { name: "h".into(), users }
}

fn list(agents: &[(u32, PathBuf)], cfg: &DeletionsConfig) -> Places {
    let h = host();
    let input = RootsInput { host: &h, tmpdir: Some(Path::new("/scratch/t")), cfg, agents };
    Places::new(roots(&input, &|p: &Path| p.to_path_buf()))
}

fn find<'a>(p: &'a Places, prefix: &str) -> Option<&'a PlaceRoot> {
    p.roots().iter().find(|r| r.prefix == prefix)
}

#[test]
fn the_fixed_places_from_accounts_and_temp_dirs() {
    let p = list(&[], &DeletionsConfig::default());
    let place = |pre: &str| find(&p, pre).map(|r| (r.place, r.protect, r.sensitive));
    // Homes are observed, not enforced, by default (`deletions.enforce_places` is empty).
    assert_eq!(place("/home/dev/"), Some((Place::Home, false, false)));
    assert_eq!(place("/root/"), Some((Place::Home, false, false)));
    assert_eq!(place("/home/dev/.ssh/"), Some((Place::Home, true, true)));
    assert_eq!(place("/root/.config/gcloud/"), Some((Place::Home, true, true)));
    assert_eq!(place("/home/dev/.cache/"), Some((Place::Cache, false, false)));
    assert_eq!(place("/home/dev/.cargo/registry/"), Some((Place::Cache, false, false)));
    assert_eq!(place("/var/tmp/"), Some((Place::Temp, false, false)));
    assert_eq!(place("/scratch/t/"), Some((Place::Temp, false, false)));
    assert_eq!(place("/etc/"), Some((Place::System, true, true)));
    assert_eq!(place("/"), Some((Place::Outside, false, false)));
    // System accounts' homes are not homes.
    assert_eq!(place("/usr/sbin/"), None);
    assert_eq!(place("/nonexistent/"), None);
    assert_eq!(p.classify("/var/tmp/x", 1).place, Place::Temp);
    assert_eq!(p.classify("/var/lib/x", 1).place, Place::System);
}

#[test]
fn the_config_moves_protection_and_adds_places() {
    let cfg = DeletionsConfig {
        protected: vec!["~/.password-store".into(), "/srv/secrets".into()],
        enforce_places: vec!["outside".into()],
        cache: vec!["~/.gradle/caches".into()],
        temp: vec!["/build/tmp".into()],
        ..DeletionsConfig::default()
    };
    let p = list(&[], &cfg);
    let place = |pre: &str| find(&p, pre).map(|r| (r.place, r.protect, r.sensitive));
    assert_eq!(place("/home/dev/.password-store/"), Some((Place::Home, true, true)));
    assert_eq!(place("/home/dev/.ssh/"), None);
    assert_eq!(place("/srv/secrets/"), Some((Place::Outside, true, true)));
    assert_eq!(place("/home/dev/"), Some((Place::Home, false, false)));
    assert_eq!(place("/"), Some((Place::Outside, true, false)));
    assert_eq!(place("/home/dev/.gradle/caches/"), Some((Place::Cache, false, false)));
    assert_eq!(place("/build/tmp/"), Some((Place::Temp, false, false)));
}

#[test]
fn a_work_tree_at_or_above_a_fixed_place_is_refused() {
    let agents = [
        (7, PathBuf::from("/home/dev/src/app")),
        (8, PathBuf::from("/home/dev")),
        (9, PathBuf::from("/")),
        (10, PathBuf::from("/home")),
        (11, PathBuf::from("/tmp")),
    ];
    let p = list(&agents, &DeletionsConfig::default());
    assert_eq!(find(&p, "/home/dev/src/app/").map(|r| (r.place, r.owner, r.protect)), Some((Place::Worktree, 7, false)));
    assert_eq!(find(&p, "/home/dev/").map(|r| r.place), Some(Place::Home));
    assert_eq!(find(&p, "/").map(|r| r.place), Some(Place::Outside));
    assert_eq!(find(&p, "/home/"), None);
    assert_eq!(find(&p, "/tmp/").map(|r| r.place), Some(Place::Temp));
    assert_eq!(p.classify("/home/dev/src/app/target/x", 7).place, Place::Worktree);
    assert_eq!(p.classify("/home/dev/src/app/target/x", 8).place, Place::OtherRepo);
}

#[test]
fn the_work_tree_is_the_git_top_level_with_links_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let repo = base.join("repo");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    std::fs::create_dir_all(repo.join("src/deep")).unwrap();
    std::fs::create_dir_all(base.join("plain/sub")).unwrap();
    std::os::unix::fs::symlink(&repo, base.join("link")).unwrap();
    assert_eq!(worktree(&repo.join("src/deep")), repo);
    assert_eq!(worktree(&base.join("link/src")), repo);
    assert_eq!(worktree(&base.join("plain/sub")), base.join("plain/sub"));
}

#[test]
fn the_watch_returns_a_list_only_when_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::fs::canonicalize(dir.path()).unwrap().display().to_string();
    let mut w = PlacesWatch::new(DeletionsConfig::default(), host(), None);
    assert!(w.update(&[]).is_some());
    assert!(w.update(&[]).is_none());
    let with = w.update(&[(42, Some(cwd.clone()))]).map(<[PlaceRoot]>::to_vec).unwrap();
    assert!(with.iter().any(|r| r.place == Place::Worktree && r.owner == 42 && r.prefix == format!("{cwd}/")), "{with:?}");
    assert!(w.update(&[(42, Some(cwd))]).is_none());
    assert!(w.update(&[]).is_some());
}

//! What the .deb ships besides the binary: the man pages and shell completions that
//! `retentiond generate` writes from the clap definitions (contrib/gen-assets.sh).

use std::process::Command;

const VERBS: &[&str] = &[
    "check", "plan", "run", "holds", "rules", "register", "audit", "report", "request", "demo",
];

#[test]
fn generate_writes_a_man_page_and_completions_that_know_every_verb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new(env!("CARGO_BIN_EXE_retentiond"))
        .args(["generate", "--out"])
        .arg(dir.path())
        .status()
        .expect("run retentiond generate");
    assert!(status.success(), "{status}");
    let read = |p: &str| {
        std::fs::read_to_string(dir.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let man = read("man/retentiond.1");
    assert!(
        man.starts_with(".ie") || man.contains(".TH retentiond 1"),
        "{man}"
    );
    for verb in VERBS {
        assert!(
            man.contains(&format!("retentiond\\-{verb}(1)")),
            "man page lacks {verb}"
        );
        read(&format!("man/retentiond-{verb}.1"));
    }
    let erase = read("man/retentiond-request-erase.1");
    assert!(erase.contains("\\-\\-confirm"), "{erase}");
    for file in [
        "completions/retentiond.bash",
        "completions/_retentiond",
        "completions/retentiond.fish",
    ] {
        let text = read(file);
        for verb in VERBS {
            assert!(text.contains(verb), "{file} lacks {verb}");
        }
        // The hidden verb that builds these is not offered to users.
        assert!(!text.contains("generate"), "{file} offers `generate`");
        assert!(text.contains("log-format"), "{file} lacks --log-format");
    }
    assert!(!man.contains("generate"), "the man page lists `generate`");
}

//! `retentiond generate --out DIR` (hidden): the man pages and the bash, zsh and fish
//! completions, written from the clap definitions in `cli.rs`, so that they never disagree
//! with `--help`. `contrib/gen-assets.sh` runs it before `cargo deb` packs them.

use crate::cli::Cli;
use clap::{Command, CommandFactory};
use clap_complete::Shell;
use std::path::Path;

/// Writes `retentiond.1` and one page per verb (`retentiond-run.1`, …) into `DIR/man`, and
/// `retentiond.bash`, `_retentiond` and `retentiond.fish` into `DIR/completions`.
pub fn write(dir: &Path) -> std::io::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    clap_mangen::generate_to(Cli::command(), &man)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(
            shell,
            &mut public(Cli::command()),
            "retentiond",
            &completions,
        )?;
    }
    Ok(())
}

/// `cmd` without its hidden verbs: clap_complete would offer them (clap_mangen skips them
/// itself), and clap cannot remove a subcommand, so the top level is built again.
fn public(cmd: Command) -> Command {
    let visible: Vec<Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let mut out = Command::new("retentiond")
        .args(cmd.get_arguments().cloned())
        .subcommands(visible);
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    out.version(env!("CARGO_PKG_VERSION"))
}

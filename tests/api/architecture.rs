//! Architecture guard: the crate's own sources must keep the shape the architecture issue
//! agreed on, so that it cannot erode one convenient `use` at a time.
//!
//! * **No circles** between source files. In a circle no file can be read, tested or
//!   moved without the others.
//! * **Layers.** A module may import only from a lower layer (see [`LAYERS`]) or from
//!   within itself. The data path runs one way, and the commands stay at the edge.
//! * **No silent modules.** Every top-level module must be placed in [`LAYERS`].
//!
//! The check uses std only. It reads `src/` as text through a small lexer that blanks
//! comments and string/char literals and drops `#[cfg(test)]` items. It then resolves every
//! `crate::`, `super::` and `self::` path, every child-module path and every path through a
//! `use`-bound module name to the deepest existing module file (`crate::report::files::publish`
//! → `report::files`). A facade's `pub use` of its own children is not a dependency. The
//! binary (`src/main.rs`, `src/cli.rs`, `src/bin/`) and test modules are outside the graph.
//! Blind spots: inline `mod x { … }` blocks, `#[path]` attributes, paths built by macros.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The layer table, lowest layer first. A module in layer N may import modules of lower
/// layers only, plus its own files. Two modules in the same layer may not import each
/// other; move the shared piece a layer down instead. `lib` (src/lib.rs) is exempt. A
/// top-level module missing from this table fails the layer test, so every new module
/// gets its place on purpose.
const LAYERS: &[&[&str]] = &[
    &["config", "signal", "progress"], // 0: parsed settings, OS signals, progress
    &["db", "state"],                  // 1: the target databases, the state database
    &["audit"],                        // 2: the hash-chained trail, kept in the state database
    &["engine"],                       // 3: plans and enforces the rules
    &["report"],                       // 4: what a pass did, rendered and delivered
    &["daemon"],                       // 5: the schedule loop
    &["demo"],                         // 6: the demo company's data set
    &["commands"],                     // 7: the edge: one entry point per command of the binary
];

/// The crate's sources.
const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
/// Files of the binary, which sits outside the library's module graph.
const BINARY_FILES: &[&str] = &[
    "src/main.rs",
    "src/cli.rs",
    "src/logging.rs",
    "src/generate.rs",
    "src/terminal.rs",
];
const BINARY_DIR: &str = "src/bin/";

// ---------------------------------------------------------------------------- the checks

#[test]
fn the_module_graph_has_no_circles() {
    let graph = crate_graph();
    let found = circles(&graph);
    assert!(found.is_empty(), "{}", describe_circles(&graph, &found));
}

#[test]
fn no_module_imports_a_higher_layer() {
    let graph = crate_graph();
    let found = layer_violations(&graph, LAYERS);
    assert!(
        found.is_empty(),
        "{}",
        describe_layer_violations(&found, LAYERS)
    );
}

/// The graph of the crate's sources as they are on disk now.
fn crate_graph() -> Graph {
    let sources = read_sources(Path::new(SRC));
    let has_lib = sources.iter().any(|(path, _)| path == "src/lib.rs");
    assert!(
        has_lib,
        "no src/lib.rs under {SRC}: the architecture check would check nothing"
    );
    build_graph(&sources)
}

// ------------------------------------------------------------ the checker checks itself

/// Builds a graph from sources held in memory, as `(src/… path, text)` pairs.
fn graph_of(files: &[(&str, &str)]) -> Graph {
    let owned: Vec<(String, String)> = files
        .iter()
        .map(|(path, text)| (path.to_string(), text.to_string()))
        .collect();
    build_graph(&owned)
}

#[test]
fn the_checker_catches_a_circle_and_an_upward_import() {
    let graph = graph_of(&[
        (
            "src/lib.rs",
            "pub mod high;\npub mod low;\npub mod stray;\n",
        ),
        (
            "src/low.rs",
            "//! Docs name crate::high.\n\
             pub fn base() {}\n\
             pub fn up() -> u8 { crate::high::top::value() }\n",
        ),
        (
            "src/high/mod.rs",
            "pub mod top;\npub use top::value;\npub fn h() { crate::low::base() }\n",
        ),
        (
            "src/high/top.rs",
            "use crate::low::base;\npub fn value() -> u8 { base(); 1 }\n",
        ),
        ("src/stray.rs", "pub fn s() {}\n"),
    ]);
    let found = circles(&graph);
    assert_eq!(found, [["high::top", "low"]]);
    let report = describe_circles(&graph, &found);
    assert!(
        report
            .contains("circle of 2 modules: high::top, low\n  loop: high::top → low → high::top\n"),
        "{report}"
    );
    assert!(
        report.contains("src/high/top.rs:1: use crate::low::base; — high::top → low"),
        "{report}"
    );
    assert!(
        report.contains(
            "src/low.rs:3: pub fn up() -> u8 { crate::high::top::value() } — low → high::top"
        ),
        "{report}"
    );

    let violations = layer_violations(&graph, &[&["low"], &["high"]]);
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(
        violations[0].starts_with("src/stray.rs: module `stray` is not in the layer table"),
        "{violations:#?}"
    );
    assert!(
        violations[1].starts_with("src/low.rs:3: pub fn up()"),
        "{violations:#?}"
    );
    assert!(
        violations[1].ends_with(" — low (layer 0) must not import high (layer 1)"),
        "{violations:#?}"
    );
}

#[test]
fn paths_resolve_to_the_deepest_module_file() {
    let modules: BTreeSet<String> = ["", "config", "report", "report::files", "report::mail"]
        .map(String::from)
        .into();
    let aliases = BTreeMap::from([("cfg".to_string(), "config".to_string())]);
    let resolve = |from: &str, path: &str| {
        let segments: Vec<String> = path.split("::").map(String::from).collect();
        absolute(from, &segments, &modules, &aliases).map(|abs| deepest(&abs, &modules))
    };
    assert_eq!(
        resolve("engine", "crate::report::files::publish").as_deref(),
        Some("report::files")
    );
    assert_eq!(
        resolve("engine", "crate::config::Rule").as_deref(),
        Some("config")
    );
    assert_eq!(
        resolve("report::mail", "super::files::report_of").as_deref(),
        Some("report::files")
    );
    assert_eq!(
        resolve("report::mail", "super::RunSummary").as_deref(),
        Some("report")
    );
    assert_eq!(
        resolve("report", "mail::send").as_deref(),
        Some("report::mail")
    );
    assert_eq!(
        resolve("report", "self::mail::send").as_deref(),
        Some("report::mail")
    );
    assert_eq!(resolve("report", "cfg::Rule").as_deref(), Some("config"));
    assert_eq!(resolve("report", "crate::Thing").as_deref(), Some(""));
    assert_eq!(resolve("report", "sqlx::Row"), None);
    assert_eq!(resolve("report", "Format::Html"), None);

    let mut paths = Vec::new();
    expand_use(
        "",
        "crate::report::{self, files::{publish, report_of as of}, mail::*}",
        &mut paths,
    );
    let flat: Vec<String> = paths
        .iter()
        .map(|p| {
            format!(
                "{} as {}",
                p.segments.join("::"),
                p.binding.as_deref().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        flat,
        [
            "crate::report::self as report",
            "crate::report::files::publish as publish",
            "crate::report::files::report_of as of",
            "crate::report::mail::* as -",
        ]
    );
}

#[test]
fn comments_literals_facades_and_test_code_are_not_dependencies() {
    let a = r##"//! Docs name crate::c::x.
pub mod inner;
pub use inner::Thing; // a facade: re-exporting a child is no dependency
pub(crate) use self::inner::Other;
use crate::b::{self as bee, Real};
/* crate::c::in_a_block_comment */
const S: &str = "crate::c::in_a_string";
const R: &str = r#"super::c"#;
fn f<'a>(x: &'a str) -> char { let _ = x; '"' }
fn g() { bee::deep::call(); }
fn h() { bee::deep(1); }
#[cfg(test)]
fn helper() { crate::c::only_in_tests() }
#[cfg(test)]
mod tests {
    use crate::c::only_in_tests;
}
"##;
    let graph = graph_of(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        ("src/a/mod.rs", a),
        ("src/a/inner.rs", ""),
        ("src/b/mod.rs", "pub mod deep;\n"),
        ("src/b/deep.rs", ""),
        ("src/c.rs", ""),
        ("src/c/tests.rs", "use crate::a::inner;\n"),
        ("src/main.rs", "use retentiond::a;\nmod cli;\n"),
    ]);
    assert_eq!(graph.targets("a").collect::<Vec<_>>(), ["b", "b::deep"]);
    let lines = |to: &str| {
        graph.edges["a"][to]
            .iter()
            .map(|e| e.line)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lines("b"),
        [5, 11],
        "the `use` line and the call of the function `b::deep`"
    );
    assert_eq!(lines("b::deep"), [10]);
    assert_eq!(graph.edges.len(), 1, "only `a` depends on anything");
}

// ----------------------------------------------------------------------------- the graph

/// One place in the sources that makes a module depend on another.
struct Evidence {
    file: String,
    line: usize,
    text: String,
}

impl Evidence {
    /// `src/engine/pass.rs:14: use crate::report::summary::{…};`
    fn at(&self) -> String {
        format!("{}:{}: {}", self.file, self.line, self.text)
    }
}

/// Module files (nodes) and the dependencies between them (edges), each edge with every
/// line that causes it. Modules are named `a::b`; the crate root (src/lib.rs) is `""`.
#[derive(Default)]
struct Graph {
    files: BTreeMap<String, String>,
    edges: BTreeMap<String, BTreeMap<String, Vec<Evidence>>>,
}

impl Graph {
    fn nodes(&self) -> BTreeSet<&str> {
        let mut nodes: BTreeSet<&str> = self.files.keys().map(String::as_str).collect();
        for (from, targets) in &self.edges {
            nodes.insert(from);
            nodes.extend(targets.keys().map(String::as_str));
        }
        nodes
    }

    fn targets<'a>(&'a self, module: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.edges
            .get(module)
            .into_iter()
            .flat_map(|t| t.keys().map(String::as_str))
    }

    fn edge_list(&self) -> impl Iterator<Item = (&str, &str, &[Evidence])> {
        self.edges.iter().flat_map(|(from, targets)| {
            targets
                .iter()
                .map(move |(to, evidence)| (from.as_str(), to.as_str(), evidence.as_slice()))
        })
    }

    fn file_of(&self, module: &str) -> String {
        self.files
            .get(module)
            .cloned()
            .unwrap_or_else(|| format!("({})", display(module)))
    }
}

/// `lib` for the crate root, the module path otherwise.
fn display(module: &str) -> &str {
    if module.is_empty() {
        "lib"
    } else {
        module
    }
}

/// The top-level module a module belongs to (`engine::pass` → `engine`; root → `""`).
fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or_default()
}

fn build_graph(sources: &[(String, String)]) -> Graph {
    let mut graph = Graph::default();
    for (path, _) in sources {
        if let Some(module) = module_of(path) {
            graph.files.entry(module).or_insert_with(|| path.clone());
        }
    }
    let modules: BTreeSet<String> = graph.files.keys().cloned().collect();
    for (path, text) in sources {
        let Some(module) = module_of(path) else {
            continue;
        };
        for (target, evidence) in references(&module, path, text, &modules) {
            if target == module {
                continue;
            }
            let lines = graph
                .edges
                .entry(module.clone())
                .or_default()
                .entry(target)
                .or_default();
            if lines
                .last()
                .is_none_or(|last| (&last.file, last.line) != (&evidence.file, evidence.line))
            {
                lines.push(evidence);
            }
        }
    }
    graph
}

/// The module a file defines (`src/a/b.rs` and `src/a/b/mod.rs` → `a::b`, `src/lib.rs` →
/// the root `""`), or `None` for files outside the library graph: the binary and test modules.
fn module_of(path: &str) -> Option<String> {
    if BINARY_FILES.contains(&path) || path.starts_with(BINARY_DIR) {
        return None;
    }
    let mut segments: Vec<&str> = path
        .strip_prefix("src/")?
        .strip_suffix(".rs")?
        .split('/')
        .collect();
    if segments.last() == Some(&"mod") {
        segments.pop();
    }
    if segments == ["lib"] {
        segments.clear();
    }
    if segments.contains(&"tests") {
        return None;
    }
    Some(segments.join("::"))
}

/// Every `.rs` file under `dir` as (`src/…` path, text), sorted. A file that vanishes between
/// listing and reading (someone is moving files) is skipped.
fn read_sources(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    collect_rs_files(dir, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(&file).ok()?;
            let relative = file.strip_prefix(dir).ok()?.to_str()?.replace('\\', "/");
            Some((format!("src/{relative}"), text))
        })
        .collect()
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|entry| entry.path()) {
        if path.is_dir() {
            collect_rs_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

// ------------------------------------------------------------------ references in a file

/// A `use` declaration, possibly spanning several lines, flattened into paths.
struct UseDecl {
    lines: Range<usize>,
    is_pub: bool,
    paths: Vec<UsePath>,
}

/// One flattened path of a use tree and the name it binds (`None` for `*` and `_`).
struct UsePath {
    segments: Vec<String>,
    binding: Option<String>,
}

/// Every crate-internal path in one file, resolved to the module file it lands in.
fn references(
    module: &str,
    path: &str,
    text: &str,
    modules: &BTreeSet<String>,
) -> Vec<(String, Evidence)> {
    let raw: Vec<&str> = text.lines().collect();
    let code = code_lines(text);
    let uses = use_declarations(&code);
    let aliases = module_aliases(module, &uses, modules);
    let at = |line: usize| evidence(path, &raw, line);
    let mut found = use_references(module, &uses, modules, &aliases, &at);
    found.extend(code_references(
        module, &code, &uses, modules, &aliases, &at,
    ));
    found
}

/// Targets of `use` declarations; a `pub use` of the module's own descendants (a facade)
/// is not a dependency.
fn use_references(
    module: &str,
    uses: &[UseDecl],
    modules: &BTreeSet<String>,
    aliases: &BTreeMap<String, String>,
    at: &dyn Fn(usize) -> Evidence,
) -> Vec<(String, Evidence)> {
    let mut found = Vec::new();
    for decl in uses {
        for path in &decl.paths {
            let Some(abs) = absolute(module, &path.segments, modules, aliases) else {
                continue;
            };
            let target = deepest(&abs, modules);
            if !(decl.is_pub && is_descendant(&target, module)) {
                found.push((target, at(decl.lines.start)));
            }
        }
    }
    found
}

/// Targets of paths in code outside `use` and `mod x;` lines.
fn code_references(
    module: &str,
    code: &[String],
    uses: &[UseDecl],
    modules: &BTreeSet<String>,
    aliases: &BTreeMap<String, String>,
    at: &dyn Fn(usize) -> Evidence,
) -> Vec<(String, Evidence)> {
    let in_use: BTreeSet<usize> = uses.iter().flat_map(|decl| decl.lines.clone()).collect();
    let mut found = Vec::new();
    for (n, line) in code.iter().enumerate() {
        if in_use.contains(&n) || is_mod_declaration(line) {
            continue;
        }
        for segments in paths_in(line) {
            if let Some(abs) = absolute(module, &segments, modules, aliases) {
                found.push((deepest(&abs, modules), at(n)));
            }
        }
    }
    found
}

fn evidence(file: &str, raw: &[&str], line: usize) -> Evidence {
    let text = raw.get(line).map_or("", |l| l.trim());
    let text = match text.char_indices().nth(90) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    };
    Evidence {
        file: file.to_string(),
        line: line + 1,
        text,
    }
}

fn is_descendant(target: &str, module: &str) -> bool {
    target != module && (module.is_empty() || target.starts_with(&format!("{module}::")))
}

/// Names that a `use` binds to a whole module (`use crate::config::{self, Config}` binds
/// `config`), so that a later `config::load()` resolves to the module it names.
fn module_aliases(
    module: &str,
    uses: &[UseDecl],
    modules: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let mut aliases = BTreeMap::new();
    for path in uses.iter().flat_map(|decl| &decl.paths) {
        let Some(name) = &path.binding else { continue };
        let Some(abs) = absolute(module, &path.segments, modules, &BTreeMap::new()) else {
            continue;
        };
        if modules.contains(&abs.join("::")) {
            aliases.insert(name.clone(), abs.join("::"));
        }
    }
    aliases
}

// ----------------------------------------------------------------------- path resolution

/// A path as written in `module`, made absolute (segments below the crate root), or `None`
/// when it does not lead into this crate (std, an extern crate, a type's associated item).
fn absolute(
    module: &str,
    path: &[String],
    modules: &BTreeSet<String>,
    aliases: &BTreeMap<String, String>,
) -> Option<Vec<String>> {
    let first = path.first()?.as_str();
    let mut base = segments_of(module);
    let skip = match first {
        "crate" => {
            base.clear();
            1
        }
        "self" => 1,
        "super" => {
            let supers = path.iter().take_while(|s| *s == "super").count();
            for _ in 0..supers {
                base.pop()?;
            }
            supers
        }
        _ if modules.contains(&join_path(module, first)) => 0,
        _ => {
            base = segments_of(aliases.get(first)?);
            1
        }
    };
    base.extend(
        path[skip..]
            .iter()
            .filter(|s| *s != "self" && *s != "*")
            .cloned(),
    );
    Some(base)
}

/// The deepest existing module file on an absolute path (`report::files::publish` →
/// `report::files`), the root `""` when none matches.
fn deepest(abs: &[String], modules: &BTreeSet<String>) -> String {
    (1..=abs.len())
        .rev()
        .map(|k| abs[..k].join("::"))
        .find(|m| modules.contains(m))
        .unwrap_or_default()
}

fn segments_of(module: &str) -> Vec<String> {
    module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn join_path(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}::{path}"),
    }
}

// -------------------------------------------------------------------- reading the source

/// The file's lines with comments and literals blanked and `#[cfg(test)]` items emptied.
/// Line numbers stay those of the file.
fn code_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = blank_comments_and_literals(text)
        .lines()
        .map(String::from)
        .collect();
    blank_test_items(&mut lines);
    lines
}

/// Replaces comments (`//`, `///`, `//!`, `/* */`) and string/char literals by spaces,
/// keeping every newline.
fn blank_comments_and_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < c.len() {
        if let Some(end) = skippable_end(&c, i) {
            out.extend(
                c[i..end]
                    .iter()
                    .map(|&ch| if ch == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// If a comment or a literal starts at `i`, the index just past its end.
fn skippable_end(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    match (at(i), at(i + 1)) {
        ('/', '/') => Some(find_from(c, i, '\n')),
        ('/', '*') => Some(block_comment_end(c, i)),
        ('"', _) => Some(string_end(c, i + 1)),
        ('\'', _) => char_literal_end(c, i),
        ('r' | 'b', _) if i == 0 || !is_ident_char(c[i - 1]) => raw_string_end(c, i),
        _ => None,
    }
}

/// The index of the next `ch` at or after `from`, or the end.
fn find_from(c: &[char], from: usize, ch: char) -> usize {
    (from..c.len()).find(|&k| c[k] == ch).unwrap_or(c.len())
}

fn block_comment_end(c: &[char], mut i: usize) -> usize {
    let mut depth = 0;
    while i + 1 < c.len() {
        match (c[i], c[i + 1]) {
            ('/', '*') => depth += 1,
            ('*', '/') => depth -= 1,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
        if depth == 0 {
            return i;
        }
    }
    c.len()
}

/// The end of a `"…"` string whose contents start at `i`.
fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// `'x'`, `'\n'`, `'\u{e9}'` are literals; the `'a` of `&'a str` is a lifetime, i.e. code.
fn char_literal_end(c: &[char], i: usize) -> Option<usize> {
    match (c.get(i + 1)?, c.get(i + 2)?) {
        ('\\', _) => Some((find_from(c, i + 3, '\'') + 1).min(c.len())),
        (_, '\'') => Some(i + 3),
        _ => None,
    }
}

/// `r"…"`, `r#"…"#`, `br"…"` (a plain `b"…"` is caught by the string rule one char later).
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut k = if c[i] == 'b' { i + 1 } else { i };
    if c.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let hashes = c[k..].iter().take_while(|&&ch| ch == '#').count();
    k += hashes;
    if c.get(k) != Some(&'"') {
        return None;
    }
    let closing: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    let end = (k + 1..c.len()).find(|&j| c[j..].starts_with(&closing));
    Some(end.map_or(c.len(), |j| j + closing.len()))
}

fn is_ident_char(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

/// Empties every item carrying `#[cfg(test)]`: the tests module at the end of a file, a
/// test-only helper. Test code may reach anywhere.
fn blank_test_items(lines: &mut [String]) {
    const ATTR: &str = "#[cfg(test)]";
    let mut n = 0;
    while n < lines.len() {
        match lines[n].find(ATTR) {
            Some(col) if lines[n][..col].trim().is_empty() => {
                let end = item_end(lines, n, col + ATTR.len());
                lines[n..=end].iter_mut().for_each(String::clear);
                n = end + 1;
            }
            _ => n += 1,
        }
    }
}

/// The line on which the item starting at (`line`, `col`) ends: its `;` or `,` at depth 0,
/// its closing `}`, or the end of the block that encloses it.
fn item_end(lines: &[String], line: usize, col: usize) -> usize {
    let mut depth = 0i32;
    for (n, text) in lines.iter().enumerate().skip(line) {
        let from = if n == line { col } else { 0 };
        for ch in text[from..].chars() {
            match ch {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' => depth -= 1,
                '}' => {
                    depth -= 1;
                    if depth <= 0 {
                        return n;
                    }
                }
                ';' | ',' if depth == 0 => return n,
                _ => {}
            }
        }
    }
    lines.len() - 1
}

/// All `use` declarations (any visibility, any nesting), each joined across its lines.
fn use_declarations(code: &[String]) -> Vec<UseDecl> {
    let mut decls = Vec::new();
    let mut n = 0;
    while n < code.len() {
        let Some((is_pub, start)) = use_start(&code[n]) else {
            n += 1;
            continue;
        };
        let mut tree = start.to_string();
        let mut end = n;
        while !tree.contains(';') && end + 1 < code.len() {
            end += 1;
            tree.push(' ');
            tree.push_str(&code[end]);
        }
        let mut paths = Vec::new();
        expand_use("", tree.split(';').next().unwrap_or_default(), &mut paths);
        decls.push(UseDecl {
            lines: n..end + 1,
            is_pub,
            paths,
        });
        n = end + 1;
    }
    decls
}

/// `pub`, `pub(crate)`, `pub(super)`, `pub(in …)` taken off a line: (was it there, rest).
fn strip_visibility(line: &str) -> (bool, &str) {
    let line = line.trim_start();
    let Some(rest) = line.strip_prefix("pub") else {
        return (false, line);
    };
    let rest = match rest.strip_prefix('(') {
        Some(inner) => inner.split_once(')').map_or(inner, |(_, after)| after),
        None => rest,
    };
    if rest.starts_with(char::is_whitespace) {
        (true, rest.trim_start())
    } else {
        (false, line)
    }
}

fn use_start(line: &str) -> Option<(bool, &str)> {
    let (is_pub, rest) = strip_visibility(line);
    rest.strip_prefix("use ").map(|tree| (is_pub, tree))
}

/// `mod x;` / `pub mod x;`: a declaration, not a use.
fn is_mod_declaration(line: &str) -> bool {
    let (_, rest) = strip_visibility(line);
    rest.starts_with("mod ") && rest.trim_end().ends_with(';')
}

/// Flattens a use tree: `a::{b, c::{self, d as e}}` → `a::b`, `a::c::self`, `a::c::d` (as `e`).
fn expand_use(prefix: &str, tree: &str, out: &mut Vec<UsePath>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    let Some(open) = tree.find('{') else {
        out.push(use_leaf(prefix, tree));
        return;
    };
    let head = join_path(prefix, tree[..open].trim().trim_end_matches("::").trim());
    let close = tree
        .rfind('}')
        .filter(|&close| close > open)
        .unwrap_or(tree.len());
    for part in split_top_level(&tree[open + 1..close]) {
        expand_use(&head, part, out);
    }
}

fn use_leaf(prefix: &str, leaf: &str) -> UsePath {
    let (path, rename) = match leaf.split_once(" as ") {
        Some((path, rename)) => (path, Some(rename.trim().to_string())),
        None => (leaf, None),
    };
    let segments: Vec<String> = join_path(prefix, path.trim())
        .split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let named = segments.iter().rev().find(|s| *s != "self").cloned(); // `a::self` binds `a`
    let binding = rename.or(named).filter(|b| b != "*" && b != "_");
    UsePath { segments, binding }
}

/// Splits on the commas that are not inside braces.
fn split_top_level(list: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, ch) in list.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
}

/// Every path of two or more segments (`a::b…`) on a line of code, as its segments; a called
/// path loses its last segment (the function or macro).
fn paths_in(line: &str) -> Vec<Vec<String>> {
    let b = line.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = is_ident_start(b[i])
            && (i == 0 || !is_ident_byte(b[i - 1]))
            && !(i >= 2 && &b[i - 2..i] == b"::");
        if !starts {
            i += 1;
            continue;
        }
        let (mut segments, end) = read_path(line, i);
        if segments.len() > 1 {
            // Called: `audit::verify(…)` is a function, even beside a module `verify`.
            if matches!(b.get(end), Some(b'(' | b'!')) {
                segments.pop();
            }
            found.push(segments);
        }
        i = end;
    }
    found
}

fn read_path(line: &str, mut i: usize) -> (Vec<String>, usize) {
    let b = line.as_bytes();
    let mut segments = Vec::new();
    loop {
        let start = i;
        while i < b.len() && is_ident_byte(b[i]) {
            i += 1;
        }
        segments.push(line[start..i].to_string());
        if !(b[i..].starts_with(b"::") && b.get(i + 2).is_some_and(|&c| is_ident_start(c))) {
            return (segments, i);
        }
        i += 2;
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

// ----------------------------------------------------------------------------- circles

/// Groups of modules that reach each other (strongly connected components with more than
/// one module), each sorted; found by comparing what every module can reach.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    let nodes = graph.nodes();
    let reach: BTreeMap<&str, BTreeSet<&str>> =
        nodes.iter().map(|&n| (n, reachable(graph, n))).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut found = Vec::new();
    for &n in &nodes {
        if placed.contains(n) {
            continue;
        }
        let group: Vec<&str> = nodes
            .iter()
            .copied()
            .filter(|&m| m == n || (reach[n].contains(m) && reach[m].contains(n)))
            .collect();
        placed.extend(&group);
        if group.len() > 1 {
            found.push(group.into_iter().map(String::from).collect());
        }
    }
    found
}

fn reachable<'a>(graph: &'a Graph, from: &str) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = graph.targets(from).collect();
    while let Some(m) = todo.pop() {
        if seen.insert(m) {
            todo.extend(graph.targets(m));
        }
    }
    seen
}

/// A shortest loop from `start` back to it inside the group, e.g. `state → audit → state`.
fn shortest_loop<'a>(graph: &'a Graph, group: &[String], start: &'a str) -> Vec<&'a str> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(m) = queue.pop_front() {
        for t in graph.targets(m).filter(|t| group.iter().any(|g| g == t)) {
            if t == start {
                let mut path = vec![start, m];
                while let Some(&p) = parent.get(path[path.len() - 1]) {
                    path.push(p);
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(t) {
                parent.insert(t, m);
                queue.push_back(t);
            }
        }
    }
    vec![start]
}

/// The shortest loop through each module of the group, each loop once.
fn loops_of<'a>(graph: &'a Graph, group: &'a [String]) -> Vec<Vec<&'a str>> {
    let mut seen = BTreeSet::new();
    let mut loops = Vec::new();
    for start in group {
        let path = shortest_loop(graph, group, start);
        if seen.insert(path.iter().copied().collect::<BTreeSet<_>>()) {
            loops.push(path);
        }
    }
    loops
}

fn describe_circles(graph: &Graph, circles: &[Vec<String>]) -> String {
    let mut out = vec![format!(
        "{} circle(s) between source files. In a circle no file can be read, tested or moved \
         alone: break it by moving the shared piece down a layer or by passing it in.",
        circles.len()
    )];
    for group in circles {
        let names: Vec<&str> = group.iter().map(|m| display(m)).collect();
        let files: Vec<String> = group.iter().map(|m| graph.file_of(m)).collect();
        out.push(format!(
            "\ncircle of {} modules: {}",
            group.len(),
            names.join(", ")
        ));
        for path in loops_of(graph, group) {
            let path: Vec<&str> = path.into_iter().map(display).collect();
            out.push(format!("  loop: {}", path.join(" → ")));
        }
        out.push(format!("  files: {}", files.join(", ")));
        for (from, to, evidence) in graph.edge_list() {
            if group.iter().any(|g| g == from) && group.iter().any(|g| g == to) {
                out.push(format!(
                    "  {} — {} → {}{}",
                    evidence[0].at(),
                    display(from),
                    display(to),
                    more(evidence)
                ));
            }
        }
    }
    out.join("\n")
}

/// The other lines behind the same edge: ` (also lines 362, 439)`.
fn more(evidence: &[Evidence]) -> String {
    let lines: Vec<String> = evidence
        .iter()
        .skip(1)
        .map(|e| e.line.to_string())
        .collect();
    match lines.len() {
        0 => String::new(),
        1 => format!(" (also line {})", lines[0]),
        _ => format!(" (also lines {})", lines.join(", ")),
    }
}

// ------------------------------------------------------------------------------ layers

fn layer_of(top: &str, layers: &[&[&str]]) -> Option<usize> {
    layers.iter().position(|layer| layer.contains(&top))
}

/// Every top-level module missing from the table, then every import that goes up or sideways.
fn layer_violations(graph: &Graph, layers: &[&[&str]]) -> Vec<String> {
    let mut found = unlisted_modules(graph, layers);
    for (from, to, evidence) in graph.edge_list() {
        if let Some(why) = upward(from, to, layers) {
            found.push(format!("{} — {why}{}", evidence[0].at(), more(evidence)));
        }
    }
    found
}

fn unlisted_modules(graph: &Graph, layers: &[&[&str]]) -> Vec<String> {
    let mut tops: BTreeMap<&str, &str> = BTreeMap::new();
    for (module, file) in &graph.files {
        tops.entry(top(module)).or_insert(file);
    }
    tops.into_iter()
        .filter(|(name, _)| !name.is_empty() && layer_of(name, layers).is_none())
        .map(|(name, file)| {
            format!(
                "{file}: module `{name}` is not in the layer table \
                 — add it to LAYERS in tests/api/architecture.rs"
            )
        })
        .collect()
}

/// Why an import from `from` to `to` breaks the layering, if it does. Imports from a module
/// missing from the table are not judged (the module itself is reported); `lib` is exempt.
fn upward(from: &str, to: &str, layers: &[&[&str]]) -> Option<String> {
    let (a, b) = (top(from), top(to));
    if a == b || a.is_empty() || b.is_empty() {
        return None;
    }
    let la = layer_of(a, layers)?;
    match layer_of(b, layers) {
        None => Some(format!(
            "{a} (layer {la}) imports {b}, which is not in the layer table"
        )),
        Some(lb) if lb == la => Some(format!(
            "{a} (layer {la}) must not import {b} (layer {lb}, the same layer)"
        )),
        Some(lb) if lb > la => Some(format!("{a} (layer {la}) must not import {b} (layer {lb})")),
        Some(_) => None,
    }
}

fn describe_layer_violations(violations: &[String], layers: &[&[&str]]) -> String {
    let table: Vec<String> = layers
        .iter()
        .enumerate()
        .map(|(n, layer)| format!("  {n}: {}", layer.join(", ")))
        .collect();
    format!(
        "{} layer violation(s). A module may import only from lower layers or from within itself \
         (lowest first):\n{}\n\n{}",
        violations.len(),
        table.join("\n"),
        violations.join("\n")
    )
}

//! The README renders clean on the web: its Rust examples (compiled and run as doctests through
//! `src/lib.rs`) have no `# ` lines, which rustdoc hides but a repository page shows.

#[test]
fn readme_rust_blocks_have_no_hidden_lines() {
    let readme = include_str!("../README.md");
    let mut in_rust = false;
    let mut blocks = 0;
    for (number, line) in readme.lines().enumerate() {
        if let Some(info) = line.strip_prefix("```") {
            in_rust = !in_rust && info.starts_with("rust");
            blocks += usize::from(in_rust);
        } else if in_rust {
            let hidden = line == "#" || line.starts_with("# ");
            assert!(!hidden, "README.md:{}: hidden line {line:?}", number + 1);
        }
    }
    assert!(blocks >= 3, "found {blocks} Rust blocks");
}

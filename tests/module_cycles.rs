//! No top-level module of `src/` may depend on itself through others: a cycle between folders
//! makes each unreadable without the other (ARCHITECTURE.md has the intended layering). This
//! reads the sources, takes every `crate::NAME` path outside comments, and fails on a cycle,
//! naming a file for each edge of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/relay/pipeline.rs` → `relay`).
fn module_of(src: &Path, file: &Path) -> String {
    let first = file
        .strip_prefix(src)
        .expect("under src")
        .components()
        .next();
    let name = first.expect("a component").as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_owned()
}

fn dependency_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let from = module_of(src, file);
        let text = std::fs::read_to_string(file).expect("read source");
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name != from && modules.contains(&name) {
                    let edges = graph.entry(from.clone()).or_default();
                    let shown = file
                        .strip_prefix(src.parent().unwrap_or(src))
                        .unwrap_or(file);
                    edges.entry(name).or_insert_with(|| shown.to_path_buf());
                }
            }
        }
    }
    graph
}

/// A path from `from` back to `to` through the graph, if there is one.
fn path_back(
    graph: &Graph,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![to.to_owned()]);
    }
    if !seen.insert(from.to_owned()) {
        return None;
    }
    for next in graph.get(from).into_iter().flat_map(|e| e.keys()) {
        if let Some(mut rest) = path_back(graph, next, to, seen) {
            rest.insert(0, from.to_owned());
            return Some(rest);
        }
    }
    None
}

#[test]
fn no_folder_of_src_depends_on_itself_through_others() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = dependency_graph(&src);
    let mut cycles = Vec::new();
    for (from, edges) in &graph {
        for to in edges.keys() {
            if let Some(back) = path_back(&graph, to, from, &mut BTreeSet::new()) {
                let mut cycle = vec![from.clone()];
                cycle.extend(back);
                let proof: Vec<String> = cycle
                    .windows(2)
                    .map(|w| format!("{} → {} ({})", w[0], w[1], graph[&w[0]][&w[1]].display()))
                    .collect();
                cycles.push(proof.join("; "));
            }
        }
    }
    cycles.sort();
    cycles.dedup();
    assert!(
        cycles.is_empty(),
        "folder cycles in src/ (see ARCHITECTURE.md for the layering):\n{}",
        cycles.join("\n")
    );
}

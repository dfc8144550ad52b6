//! The rooms of the engine and which may use which (the table in `docs/ARCHITECTURE.md`).
//! Each room is a top-level module of `engine/src` (its file and its folder); this test
//! reads their source and fails when a room names a room it may not use — above all when
//! the query engine reaches past the read view, or the model imports anything at all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Room → the rooms it may use. `error` is the error types (`crate::{Error, Result,
/// DecodeError, Limit}`); `engine::read` is the read view, the only part of the facade the
/// query engine may see. Rooms not listed (the facade `engine`, `internal`, `fuzzing`) may
/// use any room.
const ROOMS: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("error", &[]),
    ("fs", &[]),
    ("codec", &["model", "error"]),
    ("index", &["model", "error"]),
    ("head", &["model", "codec", "index", "error"]),
    ("textfile", &["fs", "error"]),
    ("manifest", &["fs", "textfile", "index", "error"]),
    ("metadata", &["fs", "textfile", "model", "error"]),
    ("quality", &["model", "metadata", "fs", "textfile", "error"]),
    ("options", &["fs", "model"]),
    ("wal", &["model", "codec", "fs", "options", "error"]),
    ("segment", &["model", "codec", "fs", "index", "error"]),
    (
        "query",
        &["engine::read", "model", "index", "options", "error"],
    ),
];

/// The rooms a source text names through `crate::` paths, outside comments.
fn rooms_used(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        if code.contains("super::super") {
            // Would reach another room without naming it: rooms name each other by `crate::`.
            out.insert("super::super".to_string());
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
                .collect();
            let segments: Vec<&str> = path.split("::").collect();
            let first = segments.first().copied().unwrap_or_default();
            let room = if first.starts_with('{') || first.starts_with(char::is_uppercase) {
                // Items of the crate root: only the error types are a room of their own.
                let group = if first.starts_with('{') {
                    rest.split('}').next().unwrap_or_default()
                } else {
                    first
                };
                for item in group.trim_start_matches('{').split(',') {
                    let item = item.trim();
                    if item.is_empty() {
                        continue;
                    }
                    let room = match item {
                        "Error" | "Result" | "DecodeError" | "Limit" => "error".to_string(),
                        other => format!("crate root item {other}"),
                    };
                    out.insert(room);
                }
                continue;
            } else if first == "engine" {
                match segments.get(1) {
                    Some(second) if second.starts_with(char::is_lowercase) => {
                        format!("engine::{second}")
                    }
                    _ => "engine".to_string(),
                }
            } else {
                first.to_string()
            };
            out.insert(room);
        }
    }
    out
}

fn sources_of(room: &str) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join(format!("{room}.rs"))];
    let mut dirs = vec![src.join(room)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.retain(|f| f.exists());
    files
}

#[test]
fn every_room_uses_only_the_rooms_it_may() {
    let mut wrong = Vec::new();
    for (room, allowed) in ROOMS {
        let files = sources_of(room);
        assert!(!files.is_empty(), "room {room} has no source");
        for file in files {
            let source = std::fs::read_to_string(&file).expect("read source");
            for used in rooms_used(&source) {
                if used != *room && !allowed.contains(&used.as_str()) {
                    wrong.push(format!("{} uses {used}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "rooms crossed (see the table in docs/ARCHITECTURE.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_what_a_room_may_not_use() {
    let used = rooms_used(
        "use crate::engine::Inner;\nuse crate::{Error, Engine};\n// crate::wal in a comment\nlet x = crate::head::Head::default();\nuse crate::engine::read::{Querier};",
    );
    let want: BTreeSet<String> = [
        "engine",
        "error",
        "crate root item Engine",
        "head",
        "engine::read",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(used, want);
}

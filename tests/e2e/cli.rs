//! The command line as a user reads it: every command's `--help` gives
//! every option a description, and every option is explained somewhere in
//! the README or `docs/` (where people look before they read code).

use std::path::PathBuf;
use std::process::Command;

/// The help text of `skiff ARGS --help`.
fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run skiff --help");
    assert!(out.status.success(), "skiff {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subcommands a help text lists (without `help`).
fn subcommands(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Each option of a help text: its `--long` name and its description
/// (the rest of its line, or the indented line below).
fn options(text: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let t = match t.strip_prefix('-') {
            Some(rest) if !rest.starts_with('-') => match t.split_once(", ") {
                Some((_, long)) => long,
                None => continue,
            },
            _ => t,
        };
        let Some(flag) = t.strip_prefix("--") else {
            continue;
        };
        let name: String = flag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        // After the name and an optional <VALUE>, two spaces or more.
        let rest = flag[name.len()..].trim_start();
        let rest = if rest.starts_with('<') {
            rest.split_once('>').map_or("", |(_, r)| r)
        } else {
            rest
        };
        let mut desc = rest.trim().to_string();
        if desc.is_empty() {
            desc = lines.get(i + 1).map_or("", |n| n.trim()).to_string();
        }
        out.push((format!("--{name}"), desc));
    }
    out
}

fn docs() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    for e in std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "md") {
            text.push_str(&std::fs::read_to_string(e.path()).expect("a doc page"));
        }
    }
    text
}

/// `flag` appears as a whole option name (`--node` is not `--node-ip`).
fn mentions(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(i, _)| {
        !text[i + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

#[test]
fn every_option_is_described_in_help_and_explained_in_the_docs() {
    let docs = docs();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = 0;
    let mut problems = Vec::new();
    while let Some(cmd) = todo.pop() {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let text = help(&args);
        for sub in subcommands(&text) {
            let mut next = cmd.clone();
            next.push(sub);
            todo.push(next);
        }
        let name = format!("skiff {}", cmd.join(" "));
        for (flag, desc) in options(&text) {
            if flag == "--help" || flag == "--version" {
                continue;
            }
            seen += 1;
            if desc.is_empty() || desc.starts_with('[') || desc.starts_with("--") {
                problems.push(format!("{name} {flag}: no description in --help"));
            }
            if !mentions(&docs, &flag) {
                problems.push(format!(
                    "{name} {flag}: not mentioned in README.md or docs/"
                ));
            }
        }
    }
    assert!(
        seen > 40,
        "only {seen} options found: is the help format parsed?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn help_parsing_reads_clap_output() {
    let text = "Usage: skiff up [OPTIONS]\n\nCommands:\n  push    Push it\n  help    Print\n\nOptions:\n      --listen <LISTEN>\n          Address [default: x]\n  -d, --data-dir <D>  Where\n      --bare  [default: /tmp]\n  -h, --help  Print help\n";
    assert_eq!(subcommands(text), ["push"]);
    let o = options(text);
    assert_eq!(o[0], ("--listen".into(), "Address [default: x]".into()));
    assert_eq!(o[1], ("--data-dir".into(), "Where".into()));
    assert_eq!(o[2].0, "--bare");
    assert!(o[2].1.starts_with('['), "no description: {:?}", o[2]);
    assert!(mentions("use `--node-ip`.", "--node-ip"));
    assert!(!mentions("use `--node-ip`.", "--node"));
}

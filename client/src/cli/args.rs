//! The `arbor dfs` argument parser. HDFS commands take single-dash, multi-letter options
//! (`-ls`, `-skipTrash`), which derive-style parsers cannot read, so this is a small hand
//! parser: a table of every command's options and argument counts, the shared rules of HDFS's
//! option parsing (options come first, `--` ends them, a lone `-` is an argument), and one
//! typed [`DfsCommand`] per command. A run of one-letter flags may be combined (`-rf`).

use std::collections::HashMap;

/// One parsed `arbor dfs` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DfsCommand {
    Ls(LsOptions, Vec<String>),
    Mkdir {
        parents: bool,
        paths: Vec<String>,
    },
    Mv {
        srcs: Vec<String>,
        dst: String,
    },
    Rm {
        recursive: bool,
        force: bool,
        skip_trash: bool,
        paths: Vec<String>,
    },
    Expunge {
        immediate: bool,
    },
    Rmdir {
        ignore_non_empty: bool,
        paths: Vec<String>,
    },
    Stat {
        format: String,
        paths: Vec<String>,
    },
    Count {
        quotas: bool,
        human: bool,
        header: bool,
        paths: Vec<String>,
    },
    Chmod {
        recursive: bool,
        mode: String,
        paths: Vec<String>,
    },
    Chown {
        recursive: bool,
        owner: Option<String>,
        group: Option<String>,
        paths: Vec<String>,
    },
    Chgrp {
        recursive: bool,
        group: String,
        paths: Vec<String>,
    },
    Touchz {
        paths: Vec<String>,
    },
    Test {
        check: TestCheck,
        path: String,
    },
    SetXattr {
        action: XattrAction,
        path: String,
    },
    GetXattr {
        recursive: bool,
        dump: bool,
        name: Option<String>,
        encoding: Encoding,
        path: String,
    },
    Find {
        paths: Vec<String>,
        name: Option<String>,
        iname: Option<String>,
    },
    Du {
        summary: bool,
        human: bool,
        header: bool,
        paths: Vec<String>,
    },
    /// `-put` / `-copyFromLocal`: local files (`-` for stdin) into the cluster.
    Put {
        force: bool,
        preserve: bool,
        srcs: Vec<String>,
        dst: String,
    },
    /// `-get` / `-copyToLocal`: cluster files into a local path.
    Get {
        force: bool,
        srcs: Vec<String>,
        dst: String,
    },
    Cat {
        paths: Vec<String>,
    },
    Head {
        path: String,
    },
    Tail {
        follow: bool,
        path: String,
    },
    Cp {
        force: bool,
        preserve: bool,
        srcs: Vec<String>,
        dst: String,
    },
    AppendToFile {
        srcs: Vec<String>,
        dst: String,
    },
    Df {
        human: bool,
        paths: Vec<String>,
    },
    Truncate {
        wait: bool,
        length: u64,
        paths: Vec<String>,
    },
    Help(Option<String>),
}

/// `-ls` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LsOptions {
    pub recursive: bool,
    pub human: bool,
    pub dir_itself: bool,
    pub by_time: bool,
    pub by_size: bool,
    pub reverse: bool,
    pub paths_only: bool,
    pub access_time: bool,
}

/// What `-test` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestCheck {
    Exists,
    Directory,
    File,
    ZeroLength,
    NonEmpty,
}

/// `-setfattr`: set (value as typed, decoded later) or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrAction {
    Set { name: String, value: Option<String> },
    Remove { name: String },
}

/// Value encodings of `-getfattr -e`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Text,
    Hex,
    Base64,
}

/// A usage error: printed as `-<command>: <message>` followed by the usage line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The command with its dash (`-ls`), or the unknown word.
    pub command: String,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.command, self.message)
    }
}

struct Spec {
    name: &'static str,
    flags: &'static [&'static str],
    valued: &'static [&'static str],
    min: usize,
    max: usize,
    usage: &'static str,
    help: &'static str,
}

const MANY: usize = usize::MAX;

const SPECS: &[Spec] = &[
    Spec {
        name: "ls",
        flags: &["R", "h", "d", "t", "S", "r", "C", "u"],
        valued: &[],
        min: 0,
        max: MANY,
        usage: "-ls [-C] [-d] [-h] [-R] [-r] [-S] [-t] [-u] [<path> ...]",
        help: "List the contents of directories (or the paths themselves with -d).",
    },
    Spec {
        name: "mkdir",
        flags: &["p"],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-mkdir [-p] <path> ...",
        help: "Create directories; -p creates missing parents and accepts existing ones.",
    },
    Spec {
        name: "mv",
        flags: &[],
        valued: &[],
        min: 2,
        max: MANY,
        usage: "-mv <src> ... <dst>",
        help: "Move files or directories; several sources need a directory destination.",
    },
    Spec {
        name: "rm",
        flags: &["r", "R", "f", "skipTrash", "safely"],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-rm [-f] [-r|-R] [-skipTrash] <path> ...",
        help: "Delete files (and directory trees with -r); -f ignores missing paths. With the \
               cluster's trash on, paths move to /user/NAME/.Trash/Current unless -skipTrash.",
    },
    Spec {
        name: "expunge",
        flags: &["immediate"],
        valued: &[],
        min: 0,
        max: 0,
        usage: "-expunge [-immediate]",
        help: "Make a checkpoint of the current trash and delete checkpoints older than the \
               trash interval; -immediate deletes the whole trash.",
    },
    Spec {
        name: "rmdir",
        flags: &["-ignore-fail-on-non-empty"],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-rmdir [--ignore-fail-on-non-empty] <dir> ...",
        help: "Delete empty directories.",
    },
    Spec {
        name: "stat",
        flags: &[],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-stat [format] <path> ...",
        help: "Print statistics: %a %A %b %F %g %n %o %r %u %x %X %y %Y (default %y).",
    },
    Spec {
        name: "count",
        flags: &["q", "h", "v", "u", "x"],
        valued: &[],
        min: 0,
        max: MANY,
        usage: "-count [-q] [-h] [-v] <path> ...",
        help: "Count directories, files and bytes under the paths.",
    },
    Spec {
        name: "chmod",
        flags: &["R"],
        valued: &[],
        min: 2,
        max: MANY,
        usage: "-chmod [-R] <MODE[,MODE]... | OCTALMODE> <path> ...",
        help: "Change permissions (octal or symbolic, e.g. u+x,go-w).",
    },
    Spec {
        name: "chown",
        flags: &["R"],
        valued: &[],
        min: 2,
        max: MANY,
        usage: "-chown [-R] [OWNER][:[GROUP]] <path> ...",
        help: "Change owner and/or group (names or numbers).",
    },
    Spec {
        name: "chgrp",
        flags: &["R"],
        valued: &[],
        min: 2,
        max: MANY,
        usage: "-chgrp [-R] GROUP <path> ...",
        help: "Change the group (a name or a number).",
    },
    Spec {
        name: "touchz",
        flags: &[],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-touchz <path> ...",
        help: "Create empty files; an existing non-empty file is an error.",
    },
    Spec {
        name: "test",
        flags: &["e", "d", "f", "z", "s"],
        valued: &[],
        min: 1,
        max: 1,
        usage: "-test -[defsz] <path>",
        help: "Exit 0 if the path exists (-e), is a directory (-d), a file (-f), \
               is zero length (-z) or not (-s); else 1.",
    },
    Spec {
        name: "setfattr",
        flags: &[],
        valued: &["n", "v", "x"],
        min: 1,
        max: 1,
        usage: "-setfattr {-n name [-v value] | -x name} <path>",
        help: "Set or remove an extended attribute (value: \"text\", 0x<hex> or 0s<base64>).",
    },
    Spec {
        name: "getfattr",
        flags: &["R", "d"],
        valued: &["n", "e"],
        min: 1,
        max: 1,
        usage: "-getfattr [-R] {-n name | -d} [-e en] <path>",
        help: "Print extended attributes (-e text|hex|base64).",
    },
    Spec {
        name: "find",
        flags: &[],
        valued: &[],
        min: 0,
        max: MANY,
        usage: "-find <path> ... [-name <glob>] [-iname <glob>] [-print]",
        help: "Print the paths under the given ones whose name matches.",
    },
    Spec {
        name: "du",
        flags: &["s", "h", "v", "x"],
        valued: &[],
        min: 0,
        max: MANY,
        usage: "-du [-s] [-h] [-v] <path> ...",
        help: "Show space used: SIZE  DISK_SPACE_CONSUMED  PATH.",
    },
    Spec {
        name: "put",
        flags: &["f", "p", "l", "d"],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-put [-f] [-p] <localsrc> ... <dst>",
        help: "Copy local files (directories recursively; - reads stdin) into the cluster; \
               -f overwrites, -p keeps times and permissions.",
    },
    Spec {
        name: "copyFromLocal",
        flags: &["f", "p", "l", "d"],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-copyFromLocal [-f] [-p] <localsrc> ... <dst>",
        help: "Same as -put.",
    },
    Spec {
        name: "get",
        flags: &["f", "p", "ignoreCrc", "crc"],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-get [-f] [-p] <src> ... <localdst>",
        help: "Copy files (directories recursively) to the local file system; -f overwrites.",
    },
    Spec {
        name: "copyToLocal",
        flags: &["f", "p", "ignoreCrc", "crc"],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-copyToLocal [-f] [-p] <src> ... <localdst>",
        help: "Same as -get.",
    },
    Spec {
        name: "cat",
        flags: &["ignoreCrc"],
        valued: &[],
        min: 1,
        max: MANY,
        usage: "-cat <src> ...",
        help: "Print the contents of files.",
    },
    Spec {
        name: "head",
        flags: &[],
        valued: &[],
        min: 1,
        max: 1,
        usage: "-head <file>",
        help: "Print the first kilobyte of a file.",
    },
    Spec {
        name: "tail",
        flags: &["f"],
        valued: &[],
        min: 1,
        max: 1,
        usage: "-tail [-f] <file>",
        help: "Print the last kilobyte of a file; -f keeps printing what is appended.",
    },
    Spec {
        name: "cp",
        flags: &["f", "p", "d"],
        valued: &[],
        min: 2,
        max: MANY,
        usage: "-cp [-f] [-p] <src> ... <dst>",
        help: "Copy files (directories recursively) within the cluster; -f overwrites.",
    },
    Spec {
        name: "appendToFile",
        flags: &[],
        valued: &[],
        min: 2,
        max: MANY,
        usage: "-appendToFile <localsrc> ... <dst>",
        help: "Append local files (- reads stdin) to a file, creating it if missing.",
    },
    Spec {
        name: "df",
        flags: &["h"],
        valued: &[],
        min: 0,
        max: MANY,
        usage: "-df [-h] [<path> ...]",
        help: "Show the capacity, used and free space of the cluster's block servers.",
    },
    Spec {
        name: "truncate",
        flags: &["w"],
        valued: &[],
        min: 2,
        max: MANY,
        usage: "-truncate [-w] <length> <path> ...",
        help: "Truncate files to a length; -w waits until it is done (it always is).",
    },
    Spec {
        name: "help",
        flags: &[],
        valued: &[],
        min: 0,
        max: 1,
        usage: "-help [cmd]",
        help: "Describe the commands.",
    },
];

fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// The usage line of a command (`ls` or `-ls`), for error output.
pub fn usage(command: &str) -> Option<String> {
    spec(command.trim_start_matches('-')).map(|s| format!("Usage: arbor dfs {}", s.usage))
}

/// The full help text, or one command's.
pub fn help(command: Option<&str>) -> String {
    let mut out = String::new();
    let selected: Vec<&Spec> = match command.and_then(|c| spec(c.trim_start_matches('-'))) {
        Some(s) => vec![s],
        None => {
            out.push_str("Usage: arbor [--namenode host:port[,...]] dfs <command> [args]\n");
            SPECS.iter().collect()
        }
    };
    for s in selected {
        out.push_str(&format!("  {}\n      {}\n", s.usage, s.help));
    }
    out
}

struct Parsed {
    flags: Vec<&'static str>,
    values: HashMap<&'static str, String>,
    args: Vec<String>,
}

impl Parsed {
    fn has(&self, flag: &str) -> bool {
        self.flags.contains(&flag)
    }
}

fn usage_error(spec: &Spec, message: impl Into<String>) -> ParseError {
    ParseError {
        command: format!("-{}", spec.name),
        message: message.into(),
    }
}

/// Options first (each known flag, a valued option and its value, or a run of one-letter
/// flags), then arguments; checks the argument count.
fn parse_options(spec: &'static Spec, mut rest: &[String]) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed {
        flags: Vec::new(),
        values: HashMap::new(),
        args: Vec::new(),
    };
    while let Some(arg) = rest.first() {
        if arg == "--" {
            rest = &rest[1..];
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        let opt = &arg[1..];
        if let Some(flag) = spec.flags.iter().find(|f| **f == opt) {
            parsed.flags.push(flag);
            rest = &rest[1..];
        } else if let Some(key) = spec.valued.iter().find(|k| **k == opt) {
            let value = rest
                .get(1)
                .ok_or_else(|| usage_error(spec, format!("option {arg} needs a value")))?;
            parsed.values.insert(key, value.clone());
            rest = &rest[2..];
        } else if opt.chars().count() > 1
            && opt
                .chars()
                .all(|c| spec.flags.iter().any(|f| f.len() == 1 && f.starts_with(c)))
        {
            for c in opt.chars() {
                if let Some(flag) = spec.flags.iter().find(|f| f.len() == 1 && f.starts_with(c)) {
                    parsed.flags.push(flag);
                }
            }
            rest = &rest[1..];
        } else {
            return Err(usage_error(spec, format!("Illegal option {arg}")));
        }
    }
    parsed.args = rest.to_vec();
    let n = parsed.args.len();
    if n < spec.min {
        return Err(usage_error(
            spec,
            format!("Not enough arguments: expected {} but got {n}", spec.min),
        ));
    }
    if n > spec.max {
        return Err(usage_error(
            spec,
            format!("Too many arguments: expected {} but got {n}", spec.max),
        ));
    }
    Ok(parsed)
}

/// Parses the words after `arbor dfs`.
pub fn parse(words: &[String]) -> Result<DfsCommand, ParseError> {
    let Some(first) = words.first() else {
        return Ok(DfsCommand::Help(None));
    };
    let name = first.strip_prefix('-').unwrap_or(first);
    let spec = match spec(name) {
        Some(s) if first.starts_with('-') => s,
        _ if first == "-usage" => return Ok(DfsCommand::Help(words.get(1).cloned())),
        _ => {
            return Err(ParseError {
                command: first.clone(),
                message: "Unknown command".into(),
            });
        }
    };
    let rest = &words[1..];
    match spec.name {
        "stat" => {
            // An optional leading format, recognised by its `%`.
            let (format, rest) = match rest.first() {
                Some(f) if f.contains('%') => (f.clone(), &rest[1..]),
                _ => ("%y".to_string(), rest),
            };
            let p = parse_options(spec, rest)?;
            Ok(DfsCommand::Stat {
                format,
                paths: p.args,
            })
        }
        "find" => parse_find(spec, rest),
        _ => {
            let p = parse_options(spec, rest)?;
            build(spec, p)
        }
    }
}

fn build(spec: &'static Spec, p: Parsed) -> Result<DfsCommand, ParseError> {
    Ok(match spec.name {
        "ls" => DfsCommand::Ls(
            LsOptions {
                recursive: p.has("R"),
                human: p.has("h"),
                dir_itself: p.has("d"),
                by_time: p.has("t"),
                by_size: p.has("S"),
                reverse: p.has("r"),
                paths_only: p.has("C"),
                access_time: p.has("u"),
            },
            p.args,
        ),
        "mkdir" => DfsCommand::Mkdir {
            parents: p.has("p"),
            paths: p.args,
        },
        "mv" => {
            let mut srcs = p.args;
            let dst = srcs.pop().unwrap_or_default();
            DfsCommand::Mv { srcs, dst }
        }
        "rm" => DfsCommand::Rm {
            recursive: p.has("r") || p.has("R"),
            force: p.has("f"),
            skip_trash: p.has("skipTrash"),
            paths: p.args,
        },
        "expunge" => DfsCommand::Expunge {
            immediate: p.has("immediate"),
        },
        "rmdir" => DfsCommand::Rmdir {
            ignore_non_empty: p.has("-ignore-fail-on-non-empty"),
            paths: p.args,
        },
        "count" => DfsCommand::Count {
            quotas: p.has("q") || p.has("u"),
            human: p.has("h"),
            header: p.has("v"),
            paths: p.args,
        },
        "chmod" | "chgrp" | "chown" => {
            let mut args = p.args;
            let first = args.remove(0);
            let recursive = p.flags.contains(&"R");
            match spec.name {
                "chmod" => DfsCommand::Chmod {
                    recursive,
                    mode: first,
                    paths: args,
                },
                "chgrp" => DfsCommand::Chgrp {
                    recursive,
                    group: first,
                    paths: args,
                },
                _ => {
                    let (owner, group) = parse_owner(&first).ok_or_else(|| {
                        usage_error(
                            spec,
                            format!(
                                "'{first}' does not match expected pattern for [owner][:group]."
                            ),
                        )
                    })?;
                    DfsCommand::Chown {
                        recursive,
                        owner,
                        group,
                        paths: args,
                    }
                }
            }
        }
        "touchz" => DfsCommand::Touchz { paths: p.args },
        "test" => {
            if p.flags.len() != 1 {
                return Err(usage_error(spec, "Only one test flag is allowed"));
            }
            let check = match p.flags[0] {
                "e" => TestCheck::Exists,
                "d" => TestCheck::Directory,
                "f" => TestCheck::File,
                "z" => TestCheck::ZeroLength,
                _ => TestCheck::NonEmpty,
            };
            DfsCommand::Test {
                check,
                path: p.args[0].clone(),
            }
        }
        "setfattr" => {
            let action = match (p.values.get("n"), p.values.get("x")) {
                (Some(name), None) => XattrAction::Set {
                    name: name.clone(),
                    value: p.values.get("v").cloned(),
                },
                (None, Some(name)) if !p.values.contains_key("v") => {
                    XattrAction::Remove { name: name.clone() }
                }
                (Some(_), Some(_)) => {
                    return Err(usage_error(
                        spec,
                        "Can not specify both '-n name' and '-x name' option.",
                    ));
                }
                _ => {
                    return Err(usage_error(
                        spec,
                        "Must specify '-n name' or '-x name' option.",
                    ));
                }
            };
            DfsCommand::SetXattr {
                action,
                path: p.args[0].clone(),
            }
        }
        "getfattr" => {
            let name = p.values.get("n").cloned();
            let dump = p.has("d");
            if name.is_none() && !dump {
                return Err(usage_error(spec, "Must specify '-n name' or '-d' option."));
            }
            let encoding = match p.values.get("e").map(|s| s.to_ascii_lowercase()).as_deref() {
                None | Some("text") => Encoding::Text,
                Some("hex") => Encoding::Hex,
                Some("base64") => Encoding::Base64,
                Some(other) => {
                    return Err(usage_error(
                        spec,
                        format!("Invalid/unsupported encoding option specified: {other}"),
                    ));
                }
            };
            DfsCommand::GetXattr {
                recursive: p.has("R"),
                dump,
                name,
                encoding,
                path: p.args[0].clone(),
            }
        }
        "du" => DfsCommand::Du {
            summary: p.has("s"),
            human: p.has("h"),
            header: p.has("v"),
            paths: p.args,
        },
        "put" | "copyFromLocal" => {
            let (srcs, dst) = sources_and_target(p.args.clone());
            DfsCommand::Put {
                force: p.has("f"),
                preserve: p.has("p"),
                srcs,
                dst,
            }
        }
        "get" | "copyToLocal" => {
            let (srcs, dst) = sources_and_target(p.args.clone());
            DfsCommand::Get {
                force: p.has("f"),
                srcs,
                dst,
            }
        }
        "cat" => DfsCommand::Cat { paths: p.args },
        "head" => DfsCommand::Head {
            path: p.args[0].clone(),
        },
        "tail" => DfsCommand::Tail {
            follow: p.has("f"),
            path: p.args[0].clone(),
        },
        "cp" => {
            let (srcs, dst) = sources_and_target(p.args.clone());
            DfsCommand::Cp {
                force: p.has("f"),
                preserve: p.has("p"),
                srcs,
                dst,
            }
        }
        "appendToFile" => {
            let (srcs, dst) = sources_and_target(p.args.clone());
            DfsCommand::AppendToFile { srcs, dst }
        }
        "df" => DfsCommand::Df {
            human: p.has("h"),
            paths: p.args,
        },
        "truncate" => {
            let mut args = p.args.clone();
            let first = args.remove(0);
            let length = first
                .parse::<u64>()
                .map_err(|_| usage_error(spec, format!("Illegal length: {first}")))?;
            DfsCommand::Truncate {
                wait: p.has("w"),
                length,
                paths: args,
            }
        }
        _ => DfsCommand::Help(p.args.first().cloned()),
    })
}

/// `SRC… DST`; a lone argument copies into the current (home or local) directory.
fn sources_and_target(mut args: Vec<String>) -> (Vec<String>, String) {
    if args.len() == 1 {
        return (args, ".".to_string());
    }
    let dst = args.pop().unwrap_or_else(|| ".".to_string());
    (args, dst)
}

/// `[OWNER][:[GROUP]]`: at least one of them, no empty names, at most one colon.
pub fn parse_owner(spec: &str) -> Option<(Option<String>, Option<String>)> {
    let valid = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace) && !s.contains(':');
    let (owner, group) = match spec.split_once(':') {
        Some((o, g)) => (o, Some(g)),
        None => (spec, None),
    };
    let owner = if owner.is_empty() {
        None
    } else if valid(owner) {
        Some(owner.to_string())
    } else {
        return None;
    };
    let group = match group {
        None | Some("") => None,
        Some(g) if valid(g) => Some(g.to_string()),
        Some(_) => return None,
    };
    if owner.is_none() && group.is_none() {
        return None;
    }
    Some((owner, group))
}

/// `-find PATH… EXPRESSION`: paths up to the first word starting with `-`.
fn parse_find(spec: &'static Spec, rest: &[String]) -> Result<DfsCommand, ParseError> {
    let split = rest
        .iter()
        .position(|w| w.starts_with('-') && w.len() > 1)
        .unwrap_or(rest.len());
    let paths = rest[..split].to_vec();
    let mut name = None;
    let mut iname = None;
    let mut i = split;
    while i < rest.len() {
        match rest[i].as_str() {
            "-name" | "-iname" => {
                let value = rest.get(i + 1).ok_or_else(|| {
                    usage_error(spec, format!("Expected argument for {}", rest[i]))
                })?;
                if rest[i] == "-name" {
                    name = Some(value.clone());
                } else {
                    iname = Some(value.clone());
                }
                i += 2;
            }
            "-print" | "-a" | "-and" => i += 1,
            other => return Err(usage_error(spec, format!("Unexpected argument: {other}"))),
        }
    }
    Ok(DfsCommand::Find { paths, name, iname })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &str) -> Result<DfsCommand, ParseError> {
        let words: Vec<String> = words.split_whitespace().map(str::to_string).collect();
        parse(&words)
    }

    #[test]
    fn ls_flags_and_paths() {
        let DfsCommand::Ls(o, paths) = p("-ls -R -h -t -r /a /b").unwrap() else {
            panic!("not ls");
        };
        assert!(o.recursive && o.human && o.by_time && o.reverse);
        assert!(!o.dir_itself && !o.by_size && !o.paths_only);
        assert_eq!(paths, vec!["/a", "/b"]);
        let DfsCommand::Ls(o, paths) = p("-ls").unwrap() else {
            panic!("not ls");
        };
        assert_eq!(o, LsOptions::default());
        assert!(paths.is_empty());
        let DfsCommand::Ls(o, _) = p("-ls -Rh /").unwrap() else {
            panic!("not ls");
        };
        assert!(o.recursive && o.human);
    }

    #[test]
    fn options_stop_at_the_first_argument() {
        let DfsCommand::Ls(o, paths) = p("-ls /a -R").unwrap() else {
            panic!("not ls");
        };
        assert!(!o.recursive);
        assert_eq!(paths, vec!["/a", "-R"]);
        let DfsCommand::Mkdir { paths, .. } = p("-mkdir -- -odd").unwrap() else {
            panic!("not mkdir");
        };
        assert_eq!(paths, vec!["-odd"]);
    }

    #[test]
    fn rm_variants() {
        assert_eq!(
            p("-rm -r -f -skipTrash /x /y").unwrap(),
            DfsCommand::Rm {
                recursive: true,
                force: true,
                skip_trash: true,
                paths: vec!["/x".into(), "/y".into()]
            }
        );
        assert_eq!(
            p("-rm -R /x").unwrap(),
            DfsCommand::Rm {
                recursive: true,
                force: false,
                skip_trash: false,
                paths: vec!["/x".into()]
            }
        );
        assert_eq!(
            p("-rm -rf /x").unwrap(),
            DfsCommand::Rm {
                recursive: true,
                force: true,
                skip_trash: false,
                paths: vec!["/x".into()]
            }
        );
        assert_eq!(
            p("-expunge -immediate").unwrap(),
            DfsCommand::Expunge { immediate: true }
        );
        assert!(p("-expunge /x").is_err());
        assert_eq!(
            p("-rmdir --ignore-fail-on-non-empty /d").unwrap(),
            DfsCommand::Rmdir {
                ignore_non_empty: true,
                paths: vec!["/d".into()]
            }
        );
    }

    #[test]
    fn mv_takes_the_last_word_as_destination() {
        assert_eq!(
            p("-mv /a /b /dir").unwrap(),
            DfsCommand::Mv {
                srcs: vec!["/a".into(), "/b".into()],
                dst: "/dir".into()
            }
        );
        let e = p("-mv /a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "-mv: Not enough arguments: expected 2 but got 1"
        );
    }

    #[test]
    fn stat_format_is_optional() {
        assert_eq!(
            p("-stat /a").unwrap(),
            DfsCommand::Stat {
                format: "%y".into(),
                paths: vec!["/a".into()]
            }
        );
        assert_eq!(
            p("-stat %n:%b /a /b").unwrap(),
            DfsCommand::Stat {
                format: "%n:%b".into(),
                paths: vec!["/a".into(), "/b".into()]
            }
        );
        assert!(p("-stat %n").is_err());
    }

    #[test]
    fn ownership_arguments() {
        assert_eq!(
            p("-chown -R alice:staff /a").unwrap(),
            DfsCommand::Chown {
                recursive: true,
                owner: Some("alice".into()),
                group: Some("staff".into()),
                paths: vec!["/a".into()]
            }
        );
        assert_eq!(parse_owner(":staff"), Some((None, Some("staff".into()))));
        assert_eq!(parse_owner("bob:"), Some((Some("bob".into()), None)));
        assert_eq!(parse_owner("bob"), Some((Some("bob".into()), None)));
        assert_eq!(parse_owner(":"), None);
        assert_eq!(parse_owner("a:b:c"), None);
        assert!(p("-chown : /a").is_err());
        assert_eq!(
            p("-chgrp 50 /a /b").unwrap(),
            DfsCommand::Chgrp {
                recursive: false,
                group: "50".into(),
                paths: vec!["/a".into(), "/b".into()]
            }
        );
        assert_eq!(
            p("-chmod -R go-w /a").unwrap(),
            DfsCommand::Chmod {
                recursive: true,
                mode: "go-w".into(),
                paths: vec!["/a".into()]
            }
        );
    }

    #[test]
    fn test_takes_exactly_one_check() {
        assert_eq!(
            p("-test -d /a").unwrap(),
            DfsCommand::Test {
                check: TestCheck::Directory,
                path: "/a".into()
            }
        );
        assert!(p("-test /a").is_err());
        assert!(p("-test -d -f /a").is_err());
        assert!(p("-test -d /a /b").is_err());
    }

    #[test]
    fn xattr_commands() {
        assert_eq!(
            p("-setfattr -n user.a -v \"x\" /f").unwrap(),
            DfsCommand::SetXattr {
                action: XattrAction::Set {
                    name: "user.a".into(),
                    value: Some("\"x\"".into())
                },
                path: "/f".into()
            }
        );
        assert_eq!(
            p("-setfattr -x user.a /f").unwrap(),
            DfsCommand::SetXattr {
                action: XattrAction::Remove {
                    name: "user.a".into()
                },
                path: "/f".into()
            }
        );
        assert!(p("-setfattr /f").is_err());
        assert!(p("-setfattr -n a -x b /f").is_err());
        assert_eq!(
            p("-getfattr -d -e hex /f").unwrap(),
            DfsCommand::GetXattr {
                recursive: false,
                dump: true,
                name: None,
                encoding: Encoding::Hex,
                path: "/f".into()
            }
        );
        let e = p("-getfattr /f").unwrap_err();
        assert_eq!(e.message, "Must specify '-n name' or '-d' option.");
        assert!(p("-getfattr -n").is_err());
    }

    #[test]
    fn find_expressions() {
        assert_eq!(
            p("-find /a /b -name *.txt -print").unwrap(),
            DfsCommand::Find {
                paths: vec!["/a".into(), "/b".into()],
                name: Some("*.txt".into()),
                iname: None
            }
        );
        assert_eq!(
            p("-find -iname X").unwrap(),
            DfsCommand::Find {
                paths: vec![],
                name: None,
                iname: Some("X".into())
            }
        );
        assert!(p("-find / -name").is_err());
        assert!(p("-find / -type f").is_err());
    }

    #[test]
    fn count_and_du_flags() {
        assert_eq!(
            p("-count -q -h -v /a").unwrap(),
            DfsCommand::Count {
                quotas: true,
                human: true,
                header: true,
                paths: vec!["/a".into()]
            }
        );
        assert_eq!(
            p("-du -s -h /a").unwrap(),
            DfsCommand::Du {
                summary: true,
                human: true,
                header: false,
                paths: vec!["/a".into()]
            }
        );
    }

    #[test]
    fn data_commands() {
        assert_eq!(
            p("-put -f a b /dst").unwrap(),
            DfsCommand::Put {
                force: true,
                preserve: false,
                srcs: vec!["a".into(), "b".into()],
                dst: "/dst".into()
            }
        );
        assert_eq!(
            p("-copyFromLocal - /x").unwrap(),
            DfsCommand::Put {
                force: false,
                preserve: false,
                srcs: vec!["-".into()],
                dst: "/x".into()
            }
        );
        assert_eq!(
            p("-get /a").unwrap(),
            DfsCommand::Get {
                force: false,
                srcs: vec!["/a".into()],
                dst: ".".into()
            }
        );
        assert_eq!(
            p("-copyToLocal -f /a /b local").unwrap(),
            DfsCommand::Get {
                force: true,
                srcs: vec!["/a".into(), "/b".into()],
                dst: "local".into()
            }
        );
        assert_eq!(
            p("-tail -f /log").unwrap(),
            DfsCommand::Tail {
                follow: true,
                path: "/log".into()
            }
        );
        assert!(p("-head /a /b").is_err());
        assert_eq!(
            p("-cp -p /a /b").unwrap(),
            DfsCommand::Cp {
                force: false,
                preserve: true,
                srcs: vec!["/a".into()],
                dst: "/b".into()
            }
        );
        assert!(p("-cp /a").is_err());
        assert_eq!(
            p("-appendToFile x y /f").unwrap(),
            DfsCommand::AppendToFile {
                srcs: vec!["x".into(), "y".into()],
                dst: "/f".into()
            }
        );
        assert_eq!(
            p("-df -h").unwrap(),
            DfsCommand::Df {
                human: true,
                paths: vec![]
            }
        );
        assert_eq!(
            p("-truncate -w 100 /a /b").unwrap(),
            DfsCommand::Truncate {
                wait: true,
                length: 100,
                paths: vec!["/a".into(), "/b".into()]
            }
        );
        let e = p("-truncate x /a").unwrap_err();
        assert_eq!(e.to_string(), "-truncate: Illegal length: x");
        assert!(p("-truncate 5").is_err());
    }

    #[test]
    fn errors_name_the_command() {
        let e = p("-ls -x /").unwrap_err();
        assert_eq!(e.to_string(), "-ls: Illegal option -x");
        assert_eq!(
            usage("-ls").unwrap(),
            format!("Usage: arbor dfs {}", SPECS[0].usage)
        );
        let e = p("-frobnicate /").unwrap_err();
        assert_eq!(e.to_string(), "-frobnicate: Unknown command");
        let e = p("ls /").unwrap_err();
        assert_eq!(e.to_string(), "ls: Unknown command");
        let e = p("-rmdir").unwrap_err();
        assert_eq!(
            e.to_string(),
            "-rmdir: Not enough arguments: expected 1 but got 0"
        );
        assert!(matches!(p("").unwrap(), DfsCommand::Help(None)));
        assert!(help(Some("ls")).contains("-ls [-C]"));
        assert!(help(None).contains("-getfattr"));
    }
}

//! `arbor ec`: erasure-coding policies as `hdfs ec` shows them: `-listPolicies`,
//! `-getPolicy -path P`, `-setPolicy -path P -policy NAME` and `-unsetPolicy -path P`. A policy
//! set on a directory applies to files created under it afterwards. Errors print one line on
//! stderr (through the CLI's one error mapping) and exit 1.

use std::io::Write;

use arbor_proto::namenode::EcPolicy;

use crate::cli::messages::{Subject, error_line};
use crate::client::Client;
use crate::identity::Identity;
use crate::{Options, namenode_list};

/// One parsed `arbor ec` invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcCommand {
    List,
    Get { path: String },
    Set { path: String, policy: String },
    Unset { path: String },
    Help,
}

pub const USAGE: &str = "Usage: arbor ec [COMMAND]\n\
    \x20         [-listPolicies]\n\
    \x20         [-getPolicy -path <path>]\n\
    \x20         [-setPolicy -path <path> [-policy <policy>]]\n\
    \x20         [-unsetPolicy -path <path>]";

/// Parses the words after `arbor ec`.
pub fn parse(words: &[String]) -> Result<EcCommand, String> {
    let Some(first) = words.first() else {
        return Ok(EcCommand::Help);
    };
    let mut path = None;
    let mut policy = None;
    let mut rest = words[1..].iter();
    while let Some(w) = rest.next() {
        let slot = match w.as_str() {
            "-path" => &mut path,
            "-policy" => &mut policy,
            other => return Err(format!("{first}: unexpected argument {other}")),
        };
        match rest.next() {
            Some(v) => *slot = Some(v.clone()),
            None => return Err(format!("{first}: option {w} needs a value")),
        }
    }
    let need_path =
        |p: Option<String>| p.ok_or_else(|| format!("{first}: Please specify the path."));
    match first.as_str() {
        "-listPolicies" => Ok(EcCommand::List),
        "-getPolicy" => Ok(EcCommand::Get {
            path: need_path(path)?,
        }),
        "-setPolicy" => Ok(EcCommand::Set {
            path: need_path(path)?,
            policy: policy.ok_or_else(|| format!("{first}: Please specify the policy name."))?,
        }),
        "-unsetPolicy" => Ok(EcCommand::Unset {
            path: need_path(path)?,
        }),
        "-help" | "-usage" => Ok(EcCommand::Help),
        other => Err(format!("{other}: Unknown command")),
    }
}

/// One policy as `-listPolicies` prints it.
pub fn describe(p: &EcPolicy, default: &str) -> String {
    let codec = if p.replication { "replication" } else { "rs" };
    let mark = if p.name == default { ", (default)" } else { "" };
    format!(
        "ErasureCodingPolicy=[Name={}, Schema=[ECSchema=[Codec={codec}, numDataUnits={}, \
         numParityUnits={}]], CellSize={}], State=ENABLED{mark}",
        p.name, p.data_shards, p.parity_shards, p.cell_size
    )
}

/// Runs `arbor ec WORDS…` against `client`, printing to `out`/`err`; the exit status.
pub async fn execute(
    client: &Client,
    command: EcCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let fail = |err: &mut dyn Write, e: &crate::Error, path: &str| {
        let _ = writeln!(err, "{}", error_line("ec", e, Subject::Path(path)));
        1
    };
    match command {
        EcCommand::Help => {
            let _ = writeln!(out, "{USAGE}");
            0
        }
        EcCommand::List => match client.list_ec_policies().await {
            Ok(reply) => {
                let _ = writeln!(out, "Erasure Coding Policies:");
                for p in &reply.policies {
                    let _ = writeln!(out, "{}", describe(p, &reply.default_policy));
                }
                0
            }
            Err(e) => fail(err, &e, "/"),
        },
        EcCommand::Get { path } => match client.get_ec_policy(&path).await {
            Ok(reply) => {
                match reply.policy {
                    Some(p) if !p.name.is_empty() => {
                        let _ = writeln!(out, "{}", p.name);
                    }
                    _ => {
                        let _ = writeln!(out, "The erasure coding policy of {path} is unspecified");
                    }
                }
                0
            }
            Err(e) => fail(err, &e, &path),
        },
        EcCommand::Set { path, policy } => match client.set_ec_policy(&path, &policy).await {
            Ok(()) => {
                let _ = writeln!(out, "Set {policy} erasure coding policy on {path}");
                0
            }
            Err(e) => fail(err, &e, &path),
        },
        EcCommand::Unset { path } => match client.set_ec_policy(&path, "").await {
            Ok(()) => {
                let _ = writeln!(out, "Unset erasure coding policy from {path}");
                0
            }
            Err(e) => fail(err, &e, &path),
        },
    }
}

/// `arbor ec` from `main`.
pub async fn run(args: &[String], namenode: Option<&str>) -> anyhow::Result<i32> {
    let command = match parse(args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            eprintln!("{USAGE}");
            return Ok(1);
        }
    };
    let client = Client::connect_with(
        &namenode_list(namenode),
        Identity::try_current()?,
        Options::default(),
    )?;
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    Ok(execute(&client, command, &mut out, &mut err).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &str) -> Result<EcCommand, String> {
        let w: Vec<String> = words.split_whitespace().map(str::to_string).collect();
        parse(&w)
    }

    #[test]
    fn commands_parse() {
        assert_eq!(p("-listPolicies"), Ok(EcCommand::List));
        assert_eq!(
            p("-getPolicy -path /d"),
            Ok(EcCommand::Get { path: "/d".into() })
        );
        assert_eq!(
            p("-setPolicy -path /d -policy RS-3-2-1024k"),
            Ok(EcCommand::Set {
                path: "/d".into(),
                policy: "RS-3-2-1024k".into()
            })
        );
        assert_eq!(
            p("-setPolicy -policy RS-3-2 -path /d"),
            Ok(EcCommand::Set {
                path: "/d".into(),
                policy: "RS-3-2".into()
            })
        );
        assert_eq!(
            p("-unsetPolicy -path /d"),
            Ok(EcCommand::Unset { path: "/d".into() })
        );
        assert_eq!(p(""), Ok(EcCommand::Help));
        assert!(p("-getPolicy").is_err());
        assert!(p("-setPolicy -path /d").is_err());
        assert!(p("-getPolicy -path").is_err());
        assert!(p("-frob").is_err());
        assert!(p("-getPolicy -path /d extra").is_err());
    }

    #[test]
    fn policies_print_as_in_hdfs() {
        let pol = EcPolicy {
            name: "RS-6-3-1024k".into(),
            data_shards: 6,
            parity_shards: 3,
            cell_size: 1 << 20,
            replication: false,
        };
        assert_eq!(
            describe(&pol, "RS-6-3-1024k"),
            "ErasureCodingPolicy=[Name=RS-6-3-1024k, Schema=[ECSchema=[Codec=rs, \
             numDataUnits=6, numParityUnits=3]], CellSize=1048576], State=ENABLED, (default)"
        );
        assert!(!describe(&pol, "RS-4-2-1024k").contains("default"));
    }
}

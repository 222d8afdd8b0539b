//! The commands that print file contents: `-cat` (whole files), `-head` (the first KiB) and
//! `-tail` (the last KiB; with `-f` it keeps printing what is appended, polling once a second
//! as HDFS does). A closed stdout (`| head`) ends the output quietly.

use std::time::Duration;

use crate::cli::messages::Subject;
use crate::cli::shell::{PathArg, Shell, is_dir};
use crate::cli::transfer::CHUNK;
use crate::data::FileReader;
use crate::error::Error;

/// Bytes `-head` and `-tail` print.
pub const PEEK: u64 = 1024;
/// How often `-tail -f` looks for appended bytes.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Opens a file for printing, reporting a directory or an error for `command`.
async fn open(sh: &mut Shell, command: &str, arg: &PathArg) -> Option<FileReader> {
    let reader = match sh.client.open_read(&arg.abs).await {
        Ok(r) => r,
        Err(e) => {
            sh.fail(command, &e, Subject::Path(&arg.shown));
            return None;
        }
    };
    if is_dir(reader.status()) {
        sh.fail_line(&format!("{command}: `{}': Is a directory", arg.shown));
        return None;
    }
    Some(reader)
}

/// Prints `[from, to)` of a file; `Ok(false)` when stdout closed.
async fn print_range(sh: &mut Shell, r: &FileReader, from: u64, to: u64) -> Result<bool, Error> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK as u64) as usize;
        let data = r.read_at(at, n).await?;
        if data.is_empty() {
            break;
        }
        if !sh.write_out(&data) {
            return Ok(false);
        }
        at += data.len() as u64;
    }
    Ok(true)
}

/// `-cat`.
pub async fn cat(sh: &mut Shell, paths: Vec<String>) {
    for typed in paths {
        for arg in sh.expand("cat", &typed).await {
            let Some(r) = open(sh, "cat", &arg).await else {
                continue;
            };
            match print_range(sh, &r, 0, r.len()).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => sh.fail("cat", &e, Subject::Path(&arg.shown)),
            }
        }
    }
}

/// `-head`.
pub async fn head(sh: &mut Shell, typed: &str) {
    let arg = sh.arg(typed);
    let Some(r) = open(sh, "head", &arg).await else {
        return;
    };
    if let Err(e) = print_range(sh, &r, 0, r.len().min(PEEK)).await {
        sh.fail("head", &e, Subject::Path(&arg.shown));
    }
}

/// Where `-tail` starts printing a file of `len` bytes.
pub fn tail_start(len: u64) -> u64 {
    len.saturating_sub(PEEK)
}

/// `-tail [-f]`.
pub async fn tail(sh: &mut Shell, follow: bool, typed: &str) {
    let arg = sh.arg(typed);
    let Some(r) = open(sh, "tail", &arg).await else {
        return;
    };
    let mut printed = r.len();
    match print_range(sh, &r, tail_start(printed), printed).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => return sh.fail("tail", &e, Subject::Path(&arg.shown)),
    }
    sh.flush_out();
    if !follow {
        return;
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        // Close-to-open: a fresh reader sees what writers committed since.
        let Some(r) = open(sh, "tail", &arg).await else {
            return;
        };
        let len = r.len();
        if len < printed {
            // Truncated: start again from its new end.
            printed = len;
            continue;
        }
        match print_range(sh, &r, printed, len).await {
            Ok(true) => printed = len,
            Ok(false) => return,
            Err(e) => return sh.fail("tail", &e, Subject::Path(&arg.shown)),
        }
        sh.flush_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_prints_the_last_kilobyte() {
        assert_eq!(tail_start(0), 0);
        assert_eq!(tail_start(1000), 0);
        assert_eq!(tail_start(1024), 0);
        assert_eq!(tail_start(5000), 5000 - 1024);
    }
}

//! `-truncate [-w] LENGTH PATH…`. Growing a file is the namenode's job (it appends holes that
//! read as zeros, no data moves). Shrinking goes through a writer: it takes the file's lease
//! (so a file being written is refused with LEASE_HELD) and rewrites the block holding the new
//! end at its new length, because a block's coding depends on its length. Truncation is done
//! when the command returns, so `-w` has nothing to wait for.

use crate::cli::messages::Subject;
use crate::cli::shell::{Shell, is_dir};
use crate::data::WriteOptions;
use crate::error::Error;

pub async fn run(sh: &mut Shell, _wait: bool, length: u64, paths: Vec<String>) {
    for typed in paths {
        for arg in sh.expand("truncate", &typed).await {
            let st = match sh.client.stat(&arg.abs).await {
                Ok(st) => st,
                Err(e) => {
                    sh.fail("truncate", &e, Subject::Path(&arg.shown));
                    continue;
                }
            };
            if is_dir(&st) {
                sh.fail_line(&format!("truncate: `{}': Is a directory", arg.shown));
                continue;
            }
            let result = if length >= st.size {
                sh.client.truncate(&arg.abs, length).await.map(drop)
            } else {
                shrink(sh, &arg.abs, length).await
            };
            match result {
                Ok(()) => sh.println(&format!("Truncated {} to length: {length}", arg.shown)),
                Err(e) => sh.fail("truncate", &e, Subject::Path(&arg.shown)),
            }
        }
    }
}

async fn shrink(sh: &Shell, abs: &str, length: u64) -> Result<(), Error> {
    let opts = WriteOptions {
        create: false,
        ..WriteOptions::default()
    };
    let mut w = sh.client.open_write(abs, opts).await?;
    w.set_len(length).await?;
    w.close().await?;
    Ok(())
}

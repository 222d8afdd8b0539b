//! `-stat [FORMAT]`: one line per path from HDFS's format specifiers — `%a` octal and `%A`
//! symbolic permissions, `%b` bytes, `%F` type, `%g`/`%u` group/owner, `%n` name, `%o` block
//! size, `%r` replication, `%y`/`%Y` mtime (UTC `yyyy-MM-dd HH:mm:ss` / epoch ms), `%x`/`%X`
//! atime. Unknown specifiers are printed as written; `%%` is a percent sign.

use arbor_proto::namenode::FileStatus;
use arbor_proto::records::InodeKind;

use crate::cli::format::{epoch_ms, permission_string, utc_second};
use crate::cli::messages::Subject;
use crate::cli::names::Names;
use crate::cli::shell::Shell;

/// Expands `format` for one file.
pub fn format_stat(format: &str, st: &FileStatus, names: &mut Names) -> String {
    let kind = st.kind();
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        match spec {
            'a' => out.push_str(&format!("{:o}", st.mode & 0o7777)),
            'A' => out.push_str(&permission_string(kind, st.mode)[1..]),
            'b' => out.push_str(&st.size.to_string()),
            'F' => out.push_str(match kind {
                InodeKind::Directory => "directory",
                InodeKind::Symlink => "symlink",
                _ => "regular file",
            }),
            'g' => out.push_str(&names.group(st.gid)),
            'u' => out.push_str(&names.user(st.uid)),
            'n' => out.push_str(&st.name),
            'o' => out.push_str(
                &(if kind == InodeKind::File {
                    st.block_size
                } else {
                    0
                })
                .to_string(),
            ),
            // Files are erasure coded: one copy of each shard, as HDFS reports for such files.
            'r' => out.push(if kind == InodeKind::File { '1' } else { '0' }),
            'y' => out.push_str(&utc_second(st.mtime_ns)),
            'Y' => out.push_str(&epoch_ms(st.mtime_ns).to_string()),
            'x' => out.push_str(&utc_second(st.atime_ns)),
            'X' => out.push_str(&epoch_ms(st.atime_ns).to_string()),
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

/// Runs `-stat`.
pub async fn run(sh: &mut Shell, format: &str, paths: Vec<String>) {
    for typed in paths {
        for arg in sh.expand("stat", &typed).await {
            match sh.client.stat(&arg.abs).await {
                Ok(st) => {
                    let line = format_stat(format, &st, &mut sh.names);
                    sh.println(&line);
                }
                Err(e) => sh.fail("stat", &e, Subject::Path(&arg.shown)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::names::tests::fake_names;

    fn file() -> FileStatus {
        FileStatus {
            kind: InodeKind::File as i32,
            name: "f.txt".into(),
            mode: 0o640,
            uid: 1001,
            gid: 50,
            size: 1366,
            block_size: 64 << 20,
            // 2026-11-25 15:33:07.5 UTC and one hour earlier.
            mtime_ns: 1_795_620_787_500_000_000,
            atime_ns: 1_795_617_187_000_000_000,
            ..Default::default()
        }
    }

    #[test]
    fn every_specifier() {
        let mut n = fake_names();
        let f = file();
        assert_eq!(format_stat("%a %A", &f, &mut n), "640 rw-r-----");
        assert_eq!(
            format_stat("%b|%F|%g|%u|%n", &f, &mut n),
            "1366|regular file|staff|alice|f.txt"
        );
        assert_eq!(format_stat("%o %r", &f, &mut n), "67108864 1");
        assert_eq!(format_stat("%y", &f, &mut n), "2026-11-25 15:33:07");
        assert_eq!(format_stat("%Y", &f, &mut n), "1795620787500");
        assert_eq!(format_stat("%x", &f, &mut n), "2026-11-25 14:33:07");
        assert_eq!(format_stat("%X", &f, &mut n), "1795617187000");
    }

    #[test]
    fn directories_symlinks_and_literals() {
        let mut n = fake_names();
        let d = FileStatus {
            kind: InodeKind::Directory as i32,
            name: "logs".into(),
            mode: 0o1777,
            uid: 4242,
            gid: 9,
            block_size: 123,
            ..Default::default()
        };
        assert_eq!(
            format_stat("%F %a %A %o %r %u:%g", &d, &mut n),
            "directory 1777 rwxrwxrwt 0 0 4242:9"
        );
        let l = FileStatus {
            kind: InodeKind::Symlink as i32,
            ..Default::default()
        };
        assert_eq!(format_stat("type=%F", &l, &mut n), "type=symlink");
        assert_eq!(format_stat("100%% %q end%", &l, &mut n), "100% %q end%");
    }
}

//! `-setfattr` and `-getfattr`, and the value encodings they share with HDFS: a value typed as
//! `"text"` (quotes stripped), `0x…` (hex) or `0s…` (base64), else the raw text; printed as
//! `name="text"` (or `0x…`/`0s…` with `-e`), a bare `name` for an empty value, after a
//! `# file: PATH` line per file.

use crate::cli::args::{Encoding, XattrAction};
use crate::cli::messages::Subject;
use crate::cli::shell::{PathArg, Shell, is_dir};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decodes a value as typed after `-v`.
pub fn decode_value(s: &str) -> Result<Vec<u8>, String> {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return Ok(s.as_bytes()[1..s.len() - 1].to_vec());
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return decode_hex(hex).ok_or_else(|| format!("Invalid hex value: {s}"));
    }
    if let Some(b64) = s.strip_prefix("0s").or_else(|| s.strip_prefix("0S")) {
        return decode_base64(b64).ok_or_else(|| format!("Invalid base64 value: {s}"));
    }
    Ok(s.as_bytes().to_vec())
}

/// Encodes a value for `-getfattr` output.
pub fn encode_value(value: &[u8], encoding: Encoding) -> String {
    match encoding {
        Encoding::Text => format!("\"{}\"", String::from_utf8_lossy(value)),
        Encoding::Hex => {
            let mut s = String::from("0x");
            for b in value {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
        Encoding::Base64 => format!("0s{}", encode_base64(value)),
    }
}

/// One `-getfattr` line.
pub fn attr_line(name: &str, value: &[u8], encoding: Encoding) -> String {
    if value.is_empty() {
        name.to_string()
    } else {
        format!("{name}={}", encode_value(value, encoding))
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Runs `-setfattr`.
pub async fn run_set(sh: &mut Shell, action: &XattrAction, typed: &str) {
    let value = match action {
        XattrAction::Set { value, .. } => match value.as_deref().map(decode_value).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(msg) => {
                sh.fail_line(&format!("setfattr: {msg}"));
                return;
            }
        },
        XattrAction::Remove { .. } => Vec::new(),
    };
    for arg in sh.expand("setfattr", typed).await {
        let result = match action {
            XattrAction::Set { name, .. } => sh.client.set_xattr(&arg.abs, name, &value).await,
            XattrAction::Remove { name } => sh.client.remove_xattr(&arg.abs, name).await,
        };
        if let Err(e) = result {
            sh.fail("setfattr", &e, Subject::Path(&arg.shown));
        }
    }
}

/// Runs `-getfattr` on one path, and its subtree with `-R`.
pub async fn run_get(
    sh: &mut Shell,
    recursive: bool,
    name: Option<&str>,
    encoding: Encoding,
    typed: &str,
) {
    let mut stack: Vec<PathArg> = sh.expand("getfattr", typed).await;
    stack.reverse();
    while let Some(arg) = stack.pop() {
        let attrs = match name {
            Some(n) => sh
                .client
                .get_xattr(&arg.abs, n)
                .await
                .map(|v| vec![(n.to_string(), v)]),
            None => sh.client.list_xattrs(&arg.abs).await.map(|mut v| {
                v.sort();
                v
            }),
        };
        match attrs {
            Ok(attrs) => {
                sh.println(&format!("# file: {}", arg.shown));
                for (n, v) in attrs {
                    sh.println(&attr_line(&n, &v, encoding));
                }
            }
            Err(e) => sh.fail("getfattr", &e, Subject::Path(&arg.shown)),
        }
        if recursive
            && let Ok(st) = sh.client.stat(&arg.abs).await
            && is_dir(&st)
        {
            match sh.client.list(&arg.abs).await {
                Ok(entries) => {
                    for e in entries.iter().rev() {
                        stack.push(arg.child(&e.name));
                    }
                }
                Err(e) => sh.fail("getfattr", &e, Subject::Path(&arg.shown)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_decode() {
        assert_eq!(decode_value("\"hello world\"").unwrap(), b"hello world");
        assert_eq!(decode_value("plain").unwrap(), b"plain");
        assert_eq!(decode_value("0x00ff10").unwrap(), vec![0, 255, 16]);
        assert_eq!(decode_value("0sAAEC").unwrap(), vec![0, 1, 2]);
        assert_eq!(decode_value("0saGk=").unwrap(), b"hi");
        assert!(decode_value("0xabc").is_err());
        assert!(decode_value("0x zz").is_err());
        assert!(decode_value("0s@@").is_err());
    }

    #[test]
    fn values_encode_as_hdfs_prints_them() {
        assert_eq!(attr_line("user.a", b"v1", Encoding::Text), "user.a=\"v1\"");
        assert_eq!(attr_line("user.a", b"", Encoding::Text), "user.a");
        assert_eq!(
            attr_line("user.b", &[0, 255], Encoding::Hex),
            "user.b=0x00ff"
        );
        assert_eq!(
            attr_line("user.c", b"hi", Encoding::Base64),
            "user.c=0saGk="
        );
    }

    #[test]
    fn base64_round_trips() {
        for len in 0..20u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let enc = encode_base64(&data);
            assert_eq!(enc.len() % 4, 0);
            assert_eq!(decode_base64(&enc).unwrap(), data);
        }
    }
}

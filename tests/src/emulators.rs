//! Object-store emulators for block servers that keep their shards in S3 or Azure Blob: moto's
//! S3 server and Azurite's blob service, each a child process of the test on a free loopback
//! port with its state in the test's directory, plus the one-time setup object_store cannot do
//! itself (creating the bucket or the container).
//!
//! Invariants: an emulator handed out answers HTTP and already holds the bucket / container the
//! block servers are pointed at; it dies with its handle (and with the test process, like every
//! child, see `process`). The tools are installed by `scripts/setup.sh` under `.tools/`; a
//! missing tool fails the test with that instruction instead of skipping it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ports;
use crate::process::{Process, Spec};

/// How long an emulator may take to answer HTTP after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one HTTP exchange with an emulator.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The S3 bucket the harness creates on moto.
pub const S3_BUCKET: &str = "arbor";
/// The Azure container the harness creates on Azurite.
pub const AZURE_CONTAINER: &str = "arbor";
/// Azurite's well-known development account and its published key.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The workspace's tool directory (`.tools/`, or `$ARBOR_TOOLS_DIR`), as scripts/setup.sh uses it.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARBOR_TOOLS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(".tools")
}

/// `$env_var` if set, else `.tools/<relative>`; panics with the setup command when absent.
fn tool(env_var: &str, relative: &str) -> PathBuf {
    let path = std::env::var_os(env_var)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| tools_dir().join(relative));
    if !path.is_file() {
        panic!(
            "{} not found: run scripts/setup.sh (or point {env_var} at it)",
            path.display()
        );
    }
    path
}

/// moto's S3 server.
pub fn moto_server_bin() -> PathBuf {
    tool("ARBOR_MOTO_SERVER", "venv/bin/moto_server")
}

/// Azurite's blob service.
pub fn azurite_blob_bin() -> PathBuf {
    tool("ARBOR_AZURITE_BLOB", "node/node_modules/.bin/azurite-blob")
}

/// A plain HTTP/1.1 response: status code and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.1 request with an empty body over a fresh connection (the emulators are on
/// loopback; nothing here needs keep-alive or TLS).
pub async fn http_request(
    port: u16,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
) -> std::io::Result<HttpResponse> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let mut request = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Length: 0\r\nConnection: close\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok(HttpResponse { status, body })
    };
    match tokio::time::timeout(HTTP_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{method} {path_and_query} on port {port}: no answer in {HTTP_TIMEOUT:?}"),
        )),
    }
}

/// Starts `program ARGS…` (with `{port}` in the args replaced by a free port) and waits until
/// it answers HTTP. The emulators print no line the process module recognises, so a shell
/// prints one and then execs the emulator in its place (same pid: kill and the parent-death
/// signal reach the emulator itself); readiness is then polled over HTTP.
async fn start_http_process(
    name: &str,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    log_dir: &Path,
) -> (Process, u16) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let port = ports::free_port();
        let mut sh_args = vec![
            "-c".to_string(),
            format!("echo '{name} starting: listening on 127.0.0.1:{port}'; exec \"$0\" \"$@\""),
            program.display().to_string(),
        ];
        sh_args.extend(args.iter().map(|a| a.replace("{port}", &port.to_string())));
        let spec = Spec {
            name: name.to_string(),
            program: PathBuf::from("/bin/sh"),
            args: sh_args,
            env: env.to_vec(),
            env_remove: Vec::new(),
            log: log_dir.join(format!("{name}.log")),
        };
        let mut process = Process::start(&spec, READY_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if http_request(port, "GET", "/", &[]).await.is_ok() {
                return (process, port);
            }
            if let Some(status) = process.try_exit() {
                // Most likely another process took the port first: try another one.
                if attempts < 4 {
                    break;
                }
                panic!(
                    "{name} exited ({status}) before answering; log {}:\n{}",
                    spec.log.display(),
                    crate::process::tail(&spec.log, 40)
                );
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{name} did not answer HTTP on port {port} within {READY_TIMEOUT:?}; log:\n{}",
                    crate::process::tail(&spec.log, 40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A running moto S3 server holding the bucket [`S3_BUCKET`].
pub struct Moto {
    process: Process,
    port: u16,
}

impl Moto {
    /// Starts moto (its log in `log_dir/moto.log`) and creates the bucket.
    pub async fn start(log_dir: &Path) -> Moto {
        let (process, port) = start_http_process(
            "moto",
            &moto_server_bin(),
            &[
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                "{port}".into(),
            ],
            &[],
            log_dir,
        )
        .await;
        let moto = Moto { process, port };
        // moto accepts any credentials; path-style `PUT /bucket` creates it in us-east-1.
        let created = http_request(port, "PUT", &format!("/{S3_BUCKET}"), &[])
            .await
            .unwrap_or_else(|e| panic!("create bucket {S3_BUCKET} on moto: {e}"));
        assert_eq!(
            created.status, 200,
            "create bucket {S3_BUCKET} on moto: {created:?}"
        );
        moto
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint block servers are given (`ARBOR_S3_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a block server needs to reach this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ARBOR_S3_ENDPOINT".into(), self.endpoint()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ]
    }

    /// Keys of the bucket's objects under `prefix` (first page of ListObjectsV2).
    pub async fn list_keys(&self, prefix: &str) -> Vec<String> {
        let listing = http_request(
            self.port,
            "GET",
            &format!("/{S3_BUCKET}?list-type=2&prefix={prefix}"),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("list bucket {S3_BUCKET}: {e}"));
        assert_eq!(listing.status, 200, "list bucket: {listing:?}");
        xml_values(&listing.body, "Key")
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// A running Azurite blob service holding the container [`AZURE_CONTAINER`].
pub struct Azurite {
    process: Process,
    port: u16,
}

impl Azurite {
    /// Starts Azurite with its data in `data_dir` (its log in `log_dir/azurite.log`) and
    /// creates the container.
    pub async fn start(data_dir: &Path, log_dir: &Path) -> Azurite {
        std::fs::create_dir_all(data_dir).expect("create Azurite's data dir");
        let (process, port) = start_http_process(
            "azurite",
            &azurite_blob_bin(),
            &[
                "--blobHost".into(),
                "127.0.0.1".into(),
                "--blobPort".into(),
                "{port}".into(),
                "--location".into(),
                data_dir.display().to_string(),
                "--skipApiVersionCheck".into(),
                "--loose".into(),
                // Tests make no calls off the machine.
                "--disableTelemetry".into(),
            ],
            &[],
            log_dir,
        )
        .await;
        let azurite = Azurite { process, port };
        let created = azurite
            .signed_request(
                "PUT",
                &format!("/{AZURE_CONTAINER}"),
                &[("restype", "container")],
            )
            .await
            .unwrap_or_else(|e| panic!("create container {AZURE_CONTAINER} on Azurite: {e}"));
        assert_eq!(
            created.status, 201,
            "create container {AZURE_CONTAINER} on Azurite: {created:?}"
        );
        azurite
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint block servers are given (`ARBOR_AZURE_EMULATOR`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a block server needs to reach this emulator.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("ARBOR_AZURE_EMULATOR".into(), self.endpoint())]
    }

    /// Names of the container's blobs under `prefix` (first page of List Blobs).
    pub async fn list_blobs(&self, prefix: &str) -> Vec<String> {
        let listing = self
            .signed_request(
                "GET",
                &format!("/{AZURE_CONTAINER}"),
                &[
                    ("comp", "list"),
                    ("prefix", prefix),
                    ("restype", "container"),
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("list container {AZURE_CONTAINER}: {e}"));
        assert_eq!(listing.status, 200, "list container: {listing:?}");
        xml_values(&listing.body, "Name")
    }

    /// A request to the development account signed with SharedKey. `path` is below the account
    /// (`/container[/blob]`); query values must not need escaping.
    pub async fn signed_request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> std::io::Result<HttpResponse> {
        let date = httpdate::fmt_http_date(SystemTime::now());
        let version = "2021-08-06";
        let mut query: Vec<(&str, &str)> = query.to_vec();
        query.sort();
        let string_to_sign = shared_key_string_to_sign(method, path, &query, &date, version);
        let key = BASE64
            .decode(AZURITE_KEY)
            .map_err(|e| std::io::Error::other(format!("the development key: {e}")))?;
        let signature = BASE64.encode(hmac_sha256(&key, string_to_sign.as_bytes()));
        let query_string: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let uri = if query_string.is_empty() {
            format!("/{AZURITE_ACCOUNT}{path}")
        } else {
            format!("/{AZURITE_ACCOUNT}{path}?{}", query_string.join("&"))
        };
        http_request(
            self.port,
            method,
            &uri,
            &[
                ("x-ms-date".into(), date),
                ("x-ms-version".into(), version.into()),
                (
                    "Authorization".into(),
                    format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
                ),
            ],
        )
        .await
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }
}

/// The SharedKey string to sign of a request with no body and no standard headers but the
/// `x-ms-date` and `x-ms-version` ones. In the emulator's path-style URLs the account is the
/// first path segment, and the canonicalized resource names it once more before the path.
pub fn shared_key_string_to_sign(
    method: &str,
    path: &str,
    sorted_query: &[(&str, &str)],
    date: &str,
    version: &str,
) -> String {
    // VERB, then Content-Encoding, -Language, -Length (empty for 0), -MD5, -Type, Date,
    // If-Modified-Since, If-Match, If-None-Match, If-Unmodified-Since, Range: all empty.
    let mut s = format!("{method}\n");
    s.push_str(&"\n".repeat(11));
    s.push_str(&format!("x-ms-date:{date}\nx-ms-version:{version}\n"));
    s.push_str(&format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}{path}"));
    for (name, value) in sorted_query {
        s.push_str(&format!("\n{}:{value}", name.to_ascii_lowercase()));
    }
    s
}

/// HMAC-SHA256 (RFC 2104) over sha2.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut padded = [0u8; BLOCK];
    if key.len() > BLOCK {
        padded[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        padded[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(padded.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(padded.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The text of every `<tag>…</tag>` in an XML listing, in order.
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut values = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        rest = &rest[start + open.len()..];
        let Some(end) = rest.find(&close) else { break };
        values.push(rest[..end].to_string());
        rest = &rest[end + close.len()..];
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2: a short key.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn string_to_sign_has_the_shared_key_shape() {
        let s = shared_key_string_to_sign(
            "PUT",
            "/arbor",
            &[("restype", "container")],
            "Wed, 25 Nov 2026 19:00:00 GMT",
            "2021-08-06",
        );
        let lines: Vec<&str> = s.split('\n').collect();
        assert_eq!(lines[0], "PUT");
        assert!(lines[1..12].iter().all(|l| l.is_empty()), "{lines:?}");
        assert_eq!(lines[12], "x-ms-date:Wed, 25 Nov 2026 19:00:00 GMT");
        assert_eq!(lines[13], "x-ms-version:2021-08-06");
        assert_eq!(lines[14], "/devstoreaccount1/devstoreaccount1/arbor");
        assert_eq!(lines[15], "restype:container");
        assert_eq!(lines.len(), 16);
    }

    #[test]
    fn xml_values_in_order() {
        let xml = "<L><Key>a/1</Key><X/><Key>b</Key><Key>unclosed";
        assert_eq!(xml_values(xml, "Key"), vec!["a/1", "b"]);
    }
}

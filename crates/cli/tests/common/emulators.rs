//! Real object-storage servers for the tests, started on loopback and
//! stopped when dropped:
//!
//! * an S3 server: moto (`moto_server`, from PyPI `moto[server]`);
//! * Azure Blob Storage: Azurite (`azurite-blob`, from npm `azurite`).
//!
//! `REPRISE_TEST_MOTO` and `REPRISE_TEST_AZURITE` name the programs
//! (scripts/test-all installs both and sets them); otherwise they are looked
//! up on PATH. When one is missing, the test fails if
//! `REPRISE_TEST_REQUIRE_ALL` is set and is skipped visibly if not
//! ([`super::skip`]).
//!
//! Ports: each server is told to listen on port 0 and the port the kernel
//! gave it is read back from its log ("Running on http://127.0.0.1:P",
//! "listens on http://127.0.0.1:P"). Picking a free port first and passing
//! it on would leave a window in which another test (six engineers and two
//! test threads share the machine) takes it.
//!
//! Also here: creating a bucket or container (the administrator's job,
//! which reprise never does), with Azure Shared Key signing written out
//! because the test needs a request reprise itself would never make.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account and key (public, documented).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Credentials given to moto (it accepts any); the secret is checked to
/// never appear in reprise's output.
pub const S3_KEY_ID: &str = "AKIAREPRISETEST";
pub const S3_SECRET: &str = "s3-secret-that-must-never-be-printed-0b6d";

/// A loopback port nothing listens on, for tests of an unreachable
/// endpoint only. Never start a server on it: the port is released before
/// the caller uses it, and another process may take it (servers listen on
/// port 0, see the module documentation).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn program(env: &str, name: &str, install: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let found = std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    if found.is_none() {
        super::skip(&format!("{name} not found ({install}; or set {env}; scripts/test-all installs it)"));
    }
    found
}

/// The port in the first `http://127.0.0.1:PORT` of a server's log: moto
/// and Azurite print the address they listen on once they are listening.
fn logged_port(log: &str) -> Option<u16> {
    let rest = &log[log.find("http://127.0.0.1:")? + "http://127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|p| *p != 0)
}

/// Starts a server told to listen on port 0 and waits until it says which
/// port it got and accepts a connection there.
fn start(mut cmd: Command, log: PathBuf) -> Server {
    let out = std::fs::File::create(&log).expect("server log");
    let err = out.try_clone().expect("log");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(port) = logged_port(&text)
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            return Server { child, port, log };
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{cmd:?} exited ({st}) before listening: {text}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not say where it listens within 60 s: {text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts moto's S3 server; `None` (test skipped) if it is not installed.
pub fn moto(work: &Path) -> Option<Server> {
    let bin = program("REPRISE_TEST_MOTO", "moto_server", "pip install 'moto[server]'")?;
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p", "0"]);
    Some(start(cmd, work.join("moto.log")))
}

/// Starts Azurite's blob service; `None` (test skipped) if not installed.
/// Telemetry off: the tests use the network on loopback only.
pub fn azurite(work: &Path) -> Option<Server> {
    let bin = program("REPRISE_TEST_AZURITE", "azurite-blob", "npm install azurite")?;
    let data = work.join("azurite");
    std::fs::create_dir_all(&data).expect("azurite dir");
    let mut cmd = Command::new(bin);
    cmd.args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--location"]).arg(&data).args(["--skipApiVersionCheck", "--silent", "--disableTelemetry"]);
    Some(start(cmd, work.join("azurite.log")))
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send");
    s.write_all(body).expect("send body");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Creates an S3 bucket (moto accepts unsigned requests).
pub fn create_bucket(s3: &Server, bucket: &str) {
    let (status, text) = http(s3.port, "PUT", &format!("/{bucket}"), &[], b"");
    assert_eq!(status, 200, "create bucket {bucket}: {text}");
}

/// `s3://BUCKET/PREFIX?endpoint=…` for a moto server.
pub fn s3_url(s3: &Server, bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?endpoint={}", s3.endpoint())
}

/// `azure://devstoreaccount1/CONTAINER/PREFIX?endpoint=…` for Azurite.
pub fn azure_url(az: &Server, container: &str, prefix: &str) -> String {
    format!("azure://{AZURITE_ACCOUNT}/{container}/{prefix}?endpoint={}/{AZURITE_ACCOUNT}", az.endpoint())
}

fn rfc1123_now() -> String {
    jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Signs a request with Azure Shared Key (the account key), for the
/// administrator's requests of the tests.
pub fn azure_shared_key_request(az: &Server, method: &str, path_and_query: &str, extra: &[(&str, String)], body: &[u8]) -> (u16, String) {
    use base64::Engine as _;
    let date = rfc1123_now();
    let version = "2021-08-06".to_owned();
    let mut ms_headers: Vec<(String, String)> = vec![("x-ms-date".into(), date), ("x-ms-version".into(), version)];
    for (k, v) in extra {
        if k.starts_with("x-ms-") {
            ms_headers.push(((*k).to_owned(), v.clone()));
        }
    }
    ms_headers.sort();
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut resource = format!("/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}{path}");
    let mut params: Vec<(&str, &str)> = query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))).collect();
    params.sort();
    for (k, v) in params {
        resource.push_str(&format!("\n{}:{v}", k.to_ascii_lowercase()));
    }
    let header = |name: &str| extra.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default();
    let length = if body.is_empty() { String::new() } else { body.len().to_string() };
    let mut to_sign = format!(
        "{method}\n{}\n{}\n{length}\n{}\n{}\n\n{}\n{}\n{}\n{}\n{}\n",
        header("Content-Encoding"),
        header("Content-Language"),
        header("Content-MD5"),
        header("Content-Type"),
        header("If-Modified-Since"),
        header("If-Match"),
        header("If-None-Match"),
        header("If-Unmodified-Since"),
        header("Range"),
    );
    for (k, v) in &ms_headers {
        to_sign.push_str(&format!("{k}:{v}\n"));
    }
    to_sign.push_str(&resource);
    let key = base64::engine::general_purpose::STANDARD.decode(AZURITE_KEY).expect("key");
    let sig = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key), to_sign.as_bytes());
    let auth = format!("SharedKey {AZURITE_ACCOUNT}:{}", base64::engine::general_purpose::STANDARD.encode(sig.as_ref()));
    let mut headers: Vec<(&str, String)> = vec![("Authorization", auth)];
    for (k, v) in &ms_headers {
        headers.push((k.as_str(), v.clone()));
    }
    for (k, v) in extra {
        if !k.starts_with("x-ms-") {
            headers.push((k, v.clone()));
        }
    }
    http(az.port, method, &format!("/{AZURITE_ACCOUNT}{path_and_query}"), &headers, body)
}

/// Creates a blob container in Azurite.
pub fn create_container(az: &Server, container: &str) {
    let (status, text) = azure_shared_key_request(az, "PUT", &format!("/{container}?restype=container"), &[], b"");
    assert_eq!(status, 201, "create container {container}: {text}");
}

/// A service SAS for a whole container with the given permissions
/// (`r` read, `c` create new blobs only, `l` list, `w` write, `d` delete),
/// valid for a day, signed with the account key. Returned as a query
/// string without `?`.
pub fn container_sas(container: &str, permissions: &str) -> String {
    use base64::Engine as _;
    let version = "2021-08-06";
    let expiry = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24)).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let resource = format!("/blob/{AZURITE_ACCOUNT}/{container}");
    // Service SAS string-to-sign, version 2020-12-06 and later: permissions,
    // start, expiry, resource, identifier, IP, protocol, version, resource
    // type, snapshot time, encryption scope, then five response headers.
    let to_sign = format!("{permissions}\n\n{expiry}\n{resource}\n\n\n\n{version}\nc\n\n\n\n\n\n\n");
    let key = base64::engine::general_purpose::STANDARD.decode(AZURITE_KEY).expect("key");
    let sig = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key), to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(sig.as_ref());
    let enc = |s: &str| s.replace('%', "%25").replace('+', "%2B").replace('/', "%2F").replace('=', "%3D").replace(':', "%3A");
    format!("sv={version}&sr=c&sp={permissions}&se={}&sig={}", enc(&expiry), enc(&sig))
}

/// A request with a SAS (no other authentication), as a compromised host
/// holding that SAS would make it.
pub fn azure_sas_request(az: &Server, method: &str, container: &str, blob: &str, sas: &str, extra: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let mut headers: Vec<(&str, String)> = vec![("x-ms-version", "2021-08-06".into())];
    // Only Put Blob (a PUT without `comp=`) takes a blob type: sent on
    // other operations, Azurite may take them for a Put Blob.
    if method == "PUT" && !sas.contains("comp=") {
        headers.push(("x-ms-blob-type", "BlockBlob".into()));
    }
    headers.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    http(az.port, method, &format!("/{AZURITE_ACCOUNT}/{container}/{blob}?{sas}"), &headers, body)
}

/// The Python interpreter that runs moto (and has boto3, which
/// `moto[server]` installs): `REPRISE_TEST_PYTHON`, else the `python` next
/// to `REPRISE_TEST_MOTO`, else `python3`.
pub fn moto_python() -> PathBuf {
    if let Some(p) = std::env::var_os("REPRISE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    std::env::var_os("REPRISE_TEST_MOTO").map(PathBuf::from).and_then(|m| m.parent().map(|d| d.join("python"))).filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("python3"))
}

/// moto's server through `tests/moto_iam_server.py`, which corrects moto's
/// signature check for encoded query strings, so that its IAM enforcement
/// can be turned on (see that file). `None` (test skipped) if moto is not
/// installed.
pub fn moto_iam(work: &Path) -> Option<Server> {
    program("REPRISE_TEST_MOTO", "moto_server", "pip install 'moto[server]'")?;
    let mut cmd = Command::new(moto_python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/moto_iam_server.py")).args(["-H", "127.0.0.1", "-p", "0"]);
    Some(start(cmd, work.join("moto.log")))
}

/// Runs `tests/s3_roles.py CMD ENDPOINT BUCKET ARG` (boto3: an S3 client
/// independent of reprise's) with `(key id, secret)` in its environment
/// (moto without IAM accepts any); returns its stdout.
pub fn s3_roles(cmd: &str, s3: &Server, bucket: &str, arg: &str, keys: Option<(&str, &str)>) -> String {
    let mut c = Command::new(moto_python());
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3_roles.py")).args([cmd, &s3.endpoint(), bucket, arg]);
    let (id, secret) = keys.unwrap_or((S3_KEY_ID, S3_SECRET));
    c.env("AWS_ACCESS_KEY_ID", id).env("AWS_SECRET_ACCESS_KEY", secret);
    let out = c.output().expect("run s3_roles.py");
    assert!(out.status.success(), "s3_roles.py {cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

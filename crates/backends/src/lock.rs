//! Storage-level immutability: retain-until dates that the storage service
//! itself enforces (S3 Object Lock; Azure immutability policies), and the
//! requests that read back whether they are in force.
//!
//! **Setting locks (S3).** S3 takes the lock on the PUT that creates the
//! object (`x-amz-object-lock-mode`, `x-amz-object-lock-retain-until-date`).
//! `object_store` 0.14 has no per-request header option (`PutOptions`
//! carries attributes — content type, metadata, tags — and HTTP
//! extensions, none of which become these headers), but it signs every
//! header of its client's *default headers* into SigV4 (its own test
//! `test_default_headers_signed_request` checks this; S3 refuses unsigned
//! `x-amz-*` headers). So the backend keeps a second S3 client whose
//! default headers carry the lock, used only for creating objects, and
//! rebuilt when the date changes. Dates are rounded **up** to the next
//! midnight UTC, so that one client serves a whole day and a lock is never
//! shorter than asked. The lock client also sends a SHA-256 checksum
//! (`x-amz-checksum-sha256`, `x-amz-sdk-checksum-algorithm`), which S3
//! requires on PUTs that set a lock.
//!
//! **Reading them back.** `object_store` exposes neither bucket
//! configuration nor lock headers, so the few status requests here are
//! built by hand and signed with `object_store`'s own public signers
//! (`AwsAuthorizer`, `AzureAuthorizer`), sent with its HTTP client: no
//! second signing implementation.
//!
//! **Azure.** Azure takes a version-level immutability policy (a
//! retain-until date and a mode, `Unlocked` or `Locked`) either on Put
//! Blob (`x-ms-immutability-policy-until-date`, `-mode`) or afterwards with
//! Set Blob Immutability Policy (`PUT BLOB?comp=immutabilityPolicies`, the
//! same two headers, API version 2020-06-12 or later); both need a
//! container with version-level immutability enabled. reprise sends the
//! second request, right after the create, built here and signed with
//! `object_store`'s `AzureAuthorizer` (the status requests' path), because
//! the first cannot be made through `object_store` 0.14: `PutOptions` has no
//! header hook, and unlike its S3 client, its Azure client signs only the
//! request's own headers, while reqwest adds the client's default headers
//! after signing (a Shared Key signature covers every `x-ms-*` header, so
//! the request would be refused). Azurite also ignores those headers on Put
//! Blob, so a lock sent there could not even be seen failing in tests; it
//! answers Set Blob Immutability Policy with 501 APINotImplemented, which
//! reprise reports. Modes: COMPLIANCE ↔ `Locked` (can only be lengthened,
//! by anyone), GOVERNANCE ↔ `Unlocked` (can be shortened or deleted by a
//! holder of the `i` SAS permission or of the
//! `immutableStorage/runAsSuperUser` data action).

use std::time::Duration;

use object_store::aws::{AwsAuthorizer, AwsCredential};
use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
use object_store::client::{HttpClient, HttpRequest, HttpRequestBody};

/// How strongly a lock holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// S3 GOVERNANCE (Azure: an unlocked policy): only a principal granted
    /// `s3:BypassGovernanceRetention` can delete or shorten before the date.
    Governance,
    /// S3 COMPLIANCE (Azure: a locked policy): nobody, not even the
    /// account's root user, can delete or shorten before the date.
    Compliance,
}

impl LockMode {
    /// The S3 name of the mode.
    #[must_use]
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    /// The Azure blob immutability policy mode that holds like this S3
    /// mode: a `Locked` policy, like COMPLIANCE, can only be lengthened; an
    /// `Unlocked` one, like GOVERNANCE, can be lifted by a privileged
    /// credential (here: the `i` SAS permission).
    #[must_use]
    pub fn azure_name(self) -> &'static str {
        match self {
            LockMode::Governance => "Unlocked",
            LockMode::Compliance => "Locked",
        }
    }

    /// The mode a service reports on an object (S3 `GOVERNANCE` /
    /// `COMPLIANCE`, Azure `Unlocked` / `Locked`), if it is one of those.
    #[must_use]
    pub fn from_service(name: &str) -> Option<LockMode> {
        match name.to_ascii_lowercase().as_str() {
            "governance" | "unlocked" => Some(LockMode::Governance),
            "compliance" | "locked" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// The lock set on new packs, index files, snapshots and WAL files: mode
/// and how long from the moment of writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub mode: LockMode,
    pub retain_for: Duration,
}

impl Lock {
    /// The retain-until date for an object written at `now`: `now +
    /// retain_for`, rounded up to the next midnight UTC (never shorter).
    #[must_use]
    pub fn until(&self, now: jiff::Timestamp) -> jiff::Timestamp {
        let exact = jiff::SignedDuration::try_from(self.retain_for).ok().and_then(|d| now.checked_add(d).ok()).unwrap_or(jiff::Timestamp::MAX);
        let day = exact.to_zoned(jiff::tz::TimeZone::UTC).date();
        let midnight = day.to_zoned(jiff::tz::TimeZone::UTC).map_or(exact, |z| z.timestamp());
        if midnight >= exact {
            midnight
        } else {
            day.tomorrow().ok().and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok()).map_or(exact, |z| z.timestamp())
        }
    }
}

/// Formats a date as S3 wants it in `x-amz-object-lock-retain-until-date`.
#[must_use]
pub fn s3_date(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Formats a date as Azure wants it in `x-ms-immutability-policy-until-date`
/// (RFC 1123, always GMT).
#[must_use]
pub fn azure_date(t: jiff::Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// A raw request before signing: method, URL (without credentials), and
/// the headers it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// Signed with the request (S3 signs its SHA-256).
    pub body: Vec<u8>,
}

/// S3 PutObjectRetention on the object at `object_url` (bucket URL and
/// key, no query): `PUT …?retention` with an XML body naming the mode and
/// the date. S3 requires an integrity header on this request; Content-MD5
/// is the one every S3-compatible server accepts. (S3 itself refuses to
/// shorten a COMPLIANCE date; reprise never asks: see prune.)
pub(crate) fn s3_retention_request(object_url: &str, mode: LockMode, until: jiff::Timestamp) -> RawRequest {
    use base64::Engine as _;
    use md5::Digest as _;
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>"#,
        mode.s3_name(),
        s3_date(until)
    )
    .into_bytes();
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
    RawRequest {
        method: "PUT",
        url: format!("{object_url}?retention"),
        headers: vec![("content-md5", md5), ("content-type", "application/xml".to_owned())],
        body,
    }
}

/// Set Blob Immutability Policy on the blob at `blob_url` (container URL
/// and blob name, no query): `PUT …?comp=immutabilityPolicies` with the
/// retain-until date and the mode.
pub(crate) fn azure_policy_request(blob_url: &str, mode: LockMode, until: jiff::Timestamp) -> RawRequest {
    RawRequest {
        method: "PUT",
        url: format!("{blob_url}?comp=immutabilityPolicies"),
        headers: vec![("x-ms-immutability-policy-until-date", azure_date(until)), ("x-ms-immutability-policy-mode", mode.azure_name().to_owned())],
        body: Vec::new(),
    }
}

/// What an Azure refusal of Set Blob Immutability Policy means, in words
/// that name the fix (status and error code only: the body may echo the
/// request's URL, SAS included).
pub(crate) fn azure_policy_refusal(status: u16, code: &str) -> String {
    match (status, code) {
        (501, _) | (_, "APINotImplemented") => format!("the storage does not implement Set Blob Immutability Policy (HTTP {status} {code}; Azurite does not)"),
        (401 | 403, _) => format!(
            "this credential may not set immutability policies (HTTP {status} {code}): give the production host's SAS the 'i' permission (RBAC: immutableStorage/runAsSuperUser/action)"
        ),
        _ => format!("the container refused an immutability policy (HTTP {status} {code}): have its administrator enable version-level immutability on it"),
    }
}

/// What the service says about immutability where the repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceImmutability {
    /// The bucket or container can hold locks that the service enforces.
    pub supported: bool,
    /// The service's own words, e.g. "Object Lock enabled; versioning
    /// Enabled; default retention none", or why it is not supported.
    pub detail: String,
}

/// The lock the service reports on one object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectLock {
    /// S3: GOVERNANCE / COMPLIANCE; Azure: Unlocked / Locked.
    pub mode: Option<String>,
    pub retain_until: Option<jiff::Timestamp>,
    pub legal_hold: bool,
}

/// An answer to a raw request: status, headers (lower-case names), body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The text of the first `<tag>` of an XML body.
    pub fn tag(&self, tag: &str) -> Option<&str> {
        let open = format!("<{tag}>");
        let a = self.body.find(&open)? + open.len();
        let b = self.body[a..].find(&format!("</{tag}>"))? + a;
        Some(&self.body[a..b])
    }
}

/// How a raw request is signed.
#[derive(Clone)]
pub(crate) enum Signer {
    S3 { key_id: String, secret: String, token: Option<String>, region: String },
    AzureKey { account: String, key: String },
    /// The SAS query (without `?`), appended to the URL.
    AzureSas(String),
}

/// Signs a raw request with `object_store`'s own signers (no network).
pub(crate) fn build(signer: &Signer, raw: &RawRequest) -> Result<HttpRequest, String> {
    let url = match signer {
        Signer::AzureSas(sas) => format!("{}{}{sas}", raw.url, if raw.url.contains('?') { '&' } else { '?' }),
        _ => raw.url.clone(),
    };
    let mut builder = http::Request::builder().method(raw.method).uri(&url);
    for (name, value) in &raw.headers {
        builder = builder.header(*name, value);
    }
    let mut request: HttpRequest = builder.body(if raw.body.is_empty() { HttpRequestBody::empty() } else { HttpRequestBody::from(raw.body.clone()) }).map_err(|e| e.to_string())?;
    match signer {
        Signer::S3 { key_id, secret, token, region } => {
            let credential = AwsCredential { key_id: key_id.clone(), secret_key: secret.clone(), token: token.clone() };
            AwsAuthorizer::new(&credential, "s3", region).try_authorize(&mut request, None).map_err(|e| e.to_string())?;
        }
        Signer::AzureKey { account, key } => {
            let credential = AzureCredential::AccessKey(AzureAccessKey::try_new(key).map_err(|e| e.to_string())?);
            AzureAuthorizer::new(&credential, account).try_authorize(&mut request).map_err(|e| e.to_string())?;
        }
        Signer::AzureSas(_) => {
            request.headers_mut().insert("x-ms-version", http::HeaderValue::from_static("2021-08-06"));
        }
    }
    Ok(request)
}

/// Sends one signed request with `object_store`'s HTTP client.
pub(crate) async fn send(client: HttpClient, signer: &Signer, raw: &RawRequest) -> Result<Answer, String> {
    let request = build(signer, raw)?;
    let response = client.execute(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response.headers().iter().map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned())).collect();
    let body = response.into_body().bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    Ok(Answer { status, headers, body })
}

/// Parses the dates services return: RFC 3339 (S3 lock headers) or RFC
/// 1123 (Azure).
pub(crate) fn parse_date(s: &str) -> Option<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>().ok().or_else(|| jiff::fmt::rfc2822::parse(s).ok().map(|z| z.timestamp()))
}

/// Whether an S3 refusal of a locked PUT means the bucket has no Object
/// Lock ("Bucket is missing Object Lock Configuration"; moto writes
/// "ObjectLockConfiguration").
pub(crate) fn is_missing_object_lock(message: &str) -> bool {
    let squeezed: String = message.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    squeezed.contains("missingobjectlockconfiguration") || squeezed.contains("objectlockconfigurationnotfound")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_up_to_midnight_and_never_shorten() {
        let lock = Lock { mode: LockMode::Compliance, retain_for: Duration::from_secs(86_400) };
        let now: jiff::Timestamp = "2026-11-21T21:37:00Z".parse().unwrap();
        assert_eq!(s3_date(lock.until(now)), "2026-11-23T00:00:00Z");
        let midnight: jiff::Timestamp = "2026-11-21T00:00:00Z".parse().unwrap();
        assert_eq!(s3_date(lock.until(midnight)), "2026-11-22T00:00:00Z", "already at midnight: not a day more");
        let forever = Lock { mode: LockMode::Governance, retain_for: Duration::from_secs(u64::MAX / 4) };
        assert!(forever.until(now) > now);
        assert!(parse_date("2046-11-22T00:00:00Z").is_some() && parse_date("Sat, 21 Nov 2026 21:41:03 GMT").is_some());
        assert!(is_missing_object_lock("InvalidRequest: Bucket is missing Object Lock Configuration"));
        assert!(is_missing_object_lock("InvalidRequest: Bucket is missing ObjectLockConfiguration"));
        assert!(!is_missing_object_lock("AccessDenied"));
    }

    /// The request reprise sends after each Azure create, signed both ways
    /// it can be: method, path, query, headers and the RFC 1123 date.
    #[test]
    fn azure_policy_request_is_set_blob_immutability_policy() {
        // Azurite's public development key: a well-formed key, no secret.
        const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
        let lock = Lock { mode: LockMode::Compliance, retain_for: Duration::from_secs(2 * 86_400) };
        let until = lock.until("2026-11-21T21:37:00Z".parse().unwrap());
        let raw = azure_policy_request("https://acct.blob.core.windows.net/ctr/repo/data/ab/abcdef", lock.mode, until);
        let header = |r: &HttpRequest, name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());

        let signed = build(&Signer::AzureKey { account: "acct".into(), key: KEY.into() }, &raw).unwrap();
        assert_eq!(signed.method(), "PUT");
        assert_eq!(signed.uri().host(), Some("acct.blob.core.windows.net"));
        assert_eq!(signed.uri().path(), "/ctr/repo/data/ab/abcdef");
        assert_eq!(signed.uri().query(), Some("comp=immutabilityPolicies"));
        assert_eq!(header(&signed, "x-ms-immutability-policy-until-date").as_deref(), Some("Tue, 24 Nov 2026 00:00:00 GMT"));
        assert_eq!(header(&signed, "x-ms-immutability-policy-mode").as_deref(), Some("Locked"));
        let version = header(&signed, "x-ms-version").unwrap();
        assert!(version.as_str() >= "2020-06-12", "Set Blob Immutability Policy needs 2020-06-12 or later, not {version}");
        assert!(header(&signed, "date").is_some_and(|d| d.ends_with(" GMT")));
        let auth = header(&signed, "authorization").unwrap();
        assert!(auth.starts_with("SharedKey acct:") && !auth.contains(KEY), "{auth}");

        // A SAS goes in the query, after comp=; nothing else authorizes.
        let raw = azure_policy_request("http://127.0.0.1:10000/devstoreaccount1/ctr/repo/index/01", LockMode::Governance, until);
        let sas = build(&Signer::AzureSas("sv=2021-08-06&sr=c&sp=rcli&sig=c2ln".into()), &raw).unwrap();
        assert_eq!(sas.uri().path(), "/devstoreaccount1/ctr/repo/index/01");
        assert_eq!(sas.uri().query(), Some("comp=immutabilityPolicies&sv=2021-08-06&sr=c&sp=rcli&sig=c2ln"));
        assert_eq!(header(&sas, "x-ms-immutability-policy-mode").as_deref(), Some("Unlocked"));
        assert!(header(&sas, "x-ms-version").unwrap().as_str() >= "2020-06-12");
        assert!(header(&sas, "authorization").is_none());

        assert!(azure_policy_refusal(501, "APINotImplemented").contains("does not implement"));
        assert_eq!(LockMode::from_service("Locked"), Some(LockMode::Compliance));
        assert_eq!(LockMode::from_service("GOVERNANCE"), Some(LockMode::Governance));
        assert_eq!(LockMode::from_service(""), None);
        assert!(azure_policy_refusal(403, "AuthorizationPermissionMismatch").contains("'i' permission"));
        assert!(azure_policy_refusal(409, "ImmutableStorageWithVersioningNotEnabled").contains("version-level immutability"));
    }

    /// PutObjectRetention: path, query, XML body, Content-MD5 of that body,
    /// and a SigV4 signature over the body's SHA-256 (no secret in it).
    #[test]
    fn s3_retention_request_is_put_object_retention() {
        use base64::Engine as _;
        use md5::Digest as _;
        let until: jiff::Timestamp = "2046-11-22T00:00:00Z".parse().unwrap();
        let raw = s3_retention_request("http://127.0.0.1:5000/locked/repo/data/ab/abcdef", LockMode::Governance, until);
        let body = String::from_utf8(raw.body.clone()).unwrap();
        assert!(body.contains("<Mode>GOVERNANCE</Mode><RetainUntilDate>2046-11-22T00:00:00Z</RetainUntilDate>"), "{body}");
        let signer = Signer::S3 { key_id: "AKIDEXAMPLE".into(), secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(), token: None, region: "us-east-1".into() };
        let signed = build(&signer, &raw).unwrap();
        assert_eq!(signed.method(), "PUT");
        assert_eq!(signed.uri().path(), "/locked/repo/data/ab/abcdef");
        assert_eq!(signed.uri().query(), Some("retention"));
        let header = |name: &str| signed.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
        assert_eq!(header("content-md5"), Some(md5));
        assert_ne!(header("x-amz-content-sha256").as_deref(), Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "the body is signed, not an empty one");
        let auth = header("authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") && auth.contains("content-md5") && !auth.contains("EXAMPLEKEY"), "{auth}");
        assert_eq!(signed.body().as_bytes().map(|b| b.to_vec()), Some(body.into_bytes()));
    }
}

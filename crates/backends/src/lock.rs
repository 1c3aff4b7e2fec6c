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
//! **Azure.** Azure sets version-level immutability with a separate request
//! after the upload (Set Blob Immutability Policy) on containers that have
//! version-level immutability enabled. reprise does not send it yet (the
//! emulator used in tests, Azurite, implements no immutability at all, so
//! it could not be tested); a container-level time-based retention policy,
//! set by the administrator, protects every blob meanwhile, and the status
//! reports it.

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

/// Sends one signed request with `object_store`'s HTTP client.
pub(crate) async fn send(client: HttpClient, signer: &Signer, method: &str, url: &str) -> Result<Answer, String> {
    let url = match signer {
        Signer::AzureSas(sas) => format!("{url}{}{sas}", if url.contains('?') { '&' } else { '?' }),
        _ => url.to_owned(),
    };
    let mut request: HttpRequest = http::Request::builder().method(method).uri(&url).body(HttpRequestBody::empty()).map_err(|e| e.to_string())?;
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
}

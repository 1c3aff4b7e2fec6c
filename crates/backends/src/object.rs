//! Repositories in object storage: S3 (and S3-compatible servers) and Azure
//! Blob Storage, through the `object_store` crate.
//!
//! `object_store` gives the HTTP clients, request signing, retries with
//! exponential backoff and decorrelated jitter, timeouts and the
//! conditional PUT (`If-None-Match: *`) that makes `create` a create-only
//! operation on both services. What is written here is the mapping to the
//! [`Backend`] contract: object names, error kinds, secrets kept out of
//! messages, and a synchronous face over the async client.
//!
//! **Write-once.** Every `create` is a single PUT with `If-None-Match: *`.
//! The storage refuses it (412) if the name exists, so a retried request
//! whose first attempt landed reports [`ErrorKind::AlreadyExists`]; every
//! caller already accepts that for content-addressed objects (packs,
//! indexes, WAL files compared byte for byte). A multipart upload cannot
//! carry that condition through `object_store` (its `put_multipart` has no
//! mode), so packs, whose size the repository config bounds (8 MiB by
//! default, 1 GiB at most, under both services' single-PUT limits of
//! 5 GiB / 5000 MiB), always go in one request.
//!
//! **Bounded concurrency.** At most [`MAX_REQUESTS`] requests are in flight
//! per backend (`LimitStore`), whatever the number of calling threads.

use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::limit::LimitStore;
use object_store::path::Path as StorePath;
use object_store::client::{HttpClient, HttpConnector, ReqwestConnector};
use object_store::{ClientOptions, HeaderMap, HeaderValue, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig};

use crate::lock::{self, Lock, ObjectLock, ServiceImmutability, Signer};
use crate::{Backend, BackendError, ErrorKind, ObjectInfo, ObjectKind};

/// Requests in flight per backend.
pub const MAX_REQUESTS: usize = 16;

/// How long one request may take before it is abandoned and retried. A pack
/// of 1 GiB at 10 MB/s fits; a stalled connection does not hang a backup.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which service a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    Azure,
}

/// A parsed object-storage URL (no secrets in it: those come from the
/// environment).
///
/// * `s3://BUCKET[/PREFIX][?endpoint=URL&region=R]`: credentials from
///   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; region
///   also from `AWS_REGION` / `AWS_DEFAULT_REGION`, endpoint also from
///   `AWS_ENDPOINT_URL`.
/// * `azure://ACCOUNT/CONTAINER[/PREFIX][?endpoint=URL]`: credentials from
///   `AZURE_STORAGE_ACCOUNT_KEY` or `AZURE_STORAGE_SAS_TOKEN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    pub service: Service,
    /// S3: unused; Azure: the storage account.
    pub account: String,
    /// Bucket or container.
    pub bucket: String,
    /// Key prefix of the repository inside the bucket, without slashes at
    /// either end; may be empty.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl ObjectUrl {
    /// Parses `s3://…` or `azure://…`; `None` if the URL has neither scheme.
    #[must_use]
    pub fn parse(url: &str) -> Option<Result<ObjectUrl, String>> {
        let (service, rest) = if let Some(r) = url.strip_prefix("s3://") {
            (Service::S3, r)
        } else if let Some(r) = url.strip_prefix("azure://").or_else(|| url.strip_prefix("az://")) {
            (Service::Azure, r)
        } else {
            return None;
        };
        Some(Self::parse_rest(service, rest))
    }

    fn parse_rest(service: Service, rest: &str) -> Result<ObjectUrl, String> {
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut endpoint = None;
        let mut region = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "endpoint" => endpoint = Some(v.to_owned()),
                "region" if service == Service::S3 => region = Some(v.to_owned()),
                other => return Err(format!("unknown URL parameter '{other}': the parameters are endpoint= and (S3) region=; credentials go in the environment, never in the URL")),
            }
        }
        let mut parts = path.trim_matches('/').splitn(if service == Service::Azure { 3 } else { 2 }, '/');
        let (account, bucket) = match service {
            Service::S3 => (String::new(), parts.next().unwrap_or_default().to_owned()),
            Service::Azure => {
                let account = parts.next().unwrap_or_default().to_owned();
                (account, parts.next().unwrap_or_default().to_owned())
            }
        };
        let prefix = parts.next().unwrap_or_default().trim_matches('/').to_owned();
        // Object keys are compared with the prefix as written: it must be
        // a plain path that the storage client does not re-encode.
        if prefix.split('/').any(|seg| seg.is_empty() || seg == "." || seg == ".." || !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))) && !prefix.is_empty() {
            return Err(format!("repository prefix '{prefix}' is not a plain path: use letters, digits, '-', '_', '.' and single '/' between names"));
        }
        if account.is_empty() && service == Service::Azure {
            return Err("no storage account: write azure://ACCOUNT/CONTAINER[/PREFIX]".into());
        }
        if bucket.is_empty() {
            return Err(match service {
                Service::S3 => "no bucket: write s3://BUCKET[/PREFIX]".into(),
                Service::Azure => "no container: write azure://ACCOUNT/CONTAINER[/PREFIX]".into(),
            });
        }
        Ok(ObjectUrl { service, account, bucket, prefix, endpoint, region })
    }

    /// The URL as shown in messages: scheme, account, bucket, prefix and
    /// endpoint (none of which is secret).
    #[must_use]
    pub fn display(&self) -> String {
        let mut s = match self.service {
            Service::S3 => format!("s3://{}", self.bucket),
            Service::Azure => format!("azure://{}/{}", self.account, self.bucket),
        };
        if !self.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.prefix);
        }
        if let Some(e) = &self.endpoint {
            s.push_str("?endpoint=");
            s.push_str(e);
        }
        s
    }
}

/// Secrets for the storage service, kept apart from the URL.
#[derive(Clone, Default)]
pub struct Credentials {
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_session_token: Option<String>,
    pub azure_account_key: Option<String>,
    /// A SAS token (`sv=…&sig=…`, with or without the leading `?`).
    pub azure_sas_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`.
    #[must_use]
    pub fn from_env() -> Credentials {
        Credentials::from_lookup(env)
    }

    /// The same names, looked up by `lookup` (an environment captured
    /// once, a credentials file, a secrets manager's output) rather than
    /// in this process's environment: one process can then hold a
    /// different identity per repository. Empty values count as unset.
    #[must_use]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Credentials {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        Credentials {
            aws_access_key_id: get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token: get("AWS_SESSION_TOKEN"),
            azure_account_key: get("AZURE_STORAGE_ACCOUNT_KEY"),
            azure_sas_token: get("AZURE_STORAGE_SAS_TOKEN"),
        }
    }

    /// The variable names [`Credentials::from_lookup`] reads.
    pub const NAMES: [&'static str; 5] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"];
}

/// A repository under a prefix of an S3 bucket or an Azure container.
pub struct ObjectBackend {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    /// Secret values that must never appear in an error message (keys,
    /// SAS tokens); replaced by `***`.
    secrets: Vec<String>,
    runtime: tokio::runtime::Runtime,
    service: Service,
    /// What the lock client and the status requests are built from.
    s3: Option<S3Parts>,
    /// The lock set on new packs, index files, snapshots and WAL files.
    lock: Option<Lock>,
    /// S3: the client whose default headers carry the lock, with the date
    /// it sets (see `lock.rs`).
    lock_store: Mutex<Option<(String, Arc<dyn ObjectStore>)>>,
    /// The bucket refused a locked PUT for want of Object Lock: plain
    /// creates from then on (warned once).
    lock_unsupported: AtomicBool,
    /// Raw signed requests (bucket lock configuration, object lock headers).
    raw: HttpClient,
    signer: Signer,
    /// Where the bucket or container answers raw requests (no trailing `/`).
    container_url: String,
}

/// What an S3 client is built from, kept to build the lock client.
struct S3Parts {
    url: ObjectUrl,
    key_id: String,
    secret: String,
    token: Option<String>,
    region: String,
    endpoint: Option<String>,
    retry: RetryConfig,
    client: ClientOptions,
}

fn s3_builder(p: &S3Parts) -> AmazonS3Builder {
    let mut b = AmazonS3Builder::new().with_bucket_name(&p.url.bucket).with_retry(p.retry.clone()).with_client_options(p.client.clone()).with_region(&p.region);
    if let Some(e) = &p.endpoint {
        // Path-style requests: S3-compatible servers on an address rarely
        // resolve BUCKET.host names.
        b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
    }
    b = b.with_access_key_id(&p.key_id).with_secret_access_key(&p.secret);
    if let Some(t) = &p.token {
        b = b.with_token(t);
    }
    b
}

impl std::fmt::Debug for ObjectBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectBackend").field("location", &self.location).finish_non_exhaustive()
    }
}

/// How long a request is retried before its failure is reported:
/// `REPRISE_STORAGE_RETRY_TIMEOUT` (seconds, e.g. `30` or `30s`), else 3
/// minutes (object_store's default, below the validity of a signature).
fn retry_timeout() -> Duration {
    env("REPRISE_STORAGE_RETRY_TIMEOUT")
        .and_then(|v| v.trim_end_matches('s').parse::<u64>().ok())
        .map_or(Duration::from_secs(180), Duration::from_secs)
}

/// How long one request may take: `REPRISE_STORAGE_REQUEST_TIMEOUT`
/// (seconds), else [`REQUEST_TIMEOUT`].
fn request_timeout() -> Duration {
    env("REPRISE_STORAGE_REQUEST_TIMEOUT")
        .and_then(|v| v.trim_end_matches('s').parse::<u64>().ok())
        .map_or(REQUEST_TIMEOUT, Duration::from_secs)
}

/// Attempts of one operation when the failure is a transport one.
const ATTEMPTS: u32 = 6;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ObjectBackend {
    /// Connects to the storage a URL names with the given credentials.
    pub fn open(url: &ObjectUrl, creds: &Credentials) -> Result<ObjectBackend, BackendError> {
        let location = url.display();
        let retry = RetryConfig { max_retries: 10, retry_timeout: retry_timeout(), ..RetryConfig::default() };
        let mut client = ClientOptions::new().with_timeout(request_timeout()).with_connect_timeout(CONNECT_TIMEOUT);
        let endpoint = url.endpoint.clone().or_else(|| if url.service == Service::S3 { env("AWS_ENDPOINT_URL") } else { None });
        if endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) {
            client = client.with_allow_http(true);
        }
        let raw_client = client.clone();
        let mut secrets = Vec::new();
        let mut s3 = None;
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match url.service {
            Service::S3 => {
                let region = url.region.clone().or_else(|| env("AWS_REGION")).or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
                match (creds.aws_access_key_id.clone(), creds.aws_secret_access_key.clone()) {
                    (Some(id), Some(secret)) => {
                        secrets.push(secret.clone());
                        if let Some(token) = &creds.aws_session_token {
                            secrets.push(token.clone());
                        }
                        let parts = S3Parts {
                            url: url.clone(),
                            key_id: id,
                            secret,
                            token: creds.aws_session_token.clone(),
                            region,
                            endpoint: endpoint.clone(),
                            retry: retry.clone(),
                            client: client.clone(),
                        };
                        let built = s3_builder(&parts).build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>);
                        s3 = Some(parts);
                        built
                    }
                    _ => {
                        return Err(BackendError::new(
                            ErrorKind::PermissionDenied,
                            &location,
                            "",
                            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, or name where this repository's come from (credentials_file, credentials_env_prefix or credentials_command in the plan: docs/STORAGE.md)",
                        ));
                    }
                }
            }
            Service::Azure => {
                let mut b = MicrosoftAzureBuilder::new().with_account(&url.account).with_container_name(&url.bucket).with_retry(retry).with_client_options(client);
                if let Some(e) = &endpoint {
                    b = b.with_endpoint(e.clone());
                    if e.starts_with("http://") {
                        b = b.with_allow_http(true);
                    }
                }
                if let Some(key) = creds.azure_account_key.clone() {
                    secrets.push(key.clone());
                    b = b.with_access_key(key);
                } else if let Some(sas) = creds.azure_sas_token.clone() {
                    let sas = sas.trim_start_matches('?').to_owned();
                    let pairs: Vec<(String, String)> = sas
                        .split('&')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
                        .collect();
                    for (k, v) in &pairs {
                        if k == "sig" {
                            secrets.push(v.clone());
                        }
                    }
                    secrets.push(sas);
                    b = b.with_sas_authorization(pairs);
                } else {
                    return Err(BackendError::new(
                        ErrorKind::PermissionDenied,
                        &location,
                        "",
                        "no Azure credentials: set AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN in the environment",
                    ));
                }
                b.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
        };
        let backend_err = |e: object_store::Error, secrets: &[String]| BackendError::new(ErrorKind::Other, &location, "", redact(&format!("cannot configure the storage client: {e}"), secrets));
        let store = built.map_err(|e| backend_err(e, &secrets))?;
        let store: Arc<dyn ObjectStore> = Arc::new(LimitStore::new(store, MAX_REQUESTS));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reprise-storage")
            .enable_all()
            .build()
            .map_err(|e| BackendError::new(ErrorKind::Other, &location, "", format!("cannot start the storage client's runtime: {e}")))?;
        let raw = ReqwestConnector {}.connect(&raw_client).map_err(|e| backend_err(e, &secrets))?;
        let (signer, container_url) = match (&s3, url.service) {
            (Some(p), _) => (
                Signer::S3 { key_id: p.key_id.clone(), secret: p.secret.clone(), token: p.token.clone(), region: p.region.clone() },
                match &p.endpoint {
                    Some(e) => format!("{}/{}", e.trim_end_matches('/'), url.bucket),
                    None => format!("https://{}.s3.{}.amazonaws.com", url.bucket, p.region),
                },
            ),
            (None, _) => (
                match (&creds.azure_account_key, &creds.azure_sas_token) {
                    (Some(key), _) => Signer::AzureKey { account: url.account.clone(), key: key.clone() },
                    (None, Some(sas)) => Signer::AzureSas(sas.trim_start_matches('?').to_owned()),
                    (None, None) => unreachable!("checked above"),
                },
                match &endpoint {
                    Some(e) => format!("{}/{}", e.trim_end_matches('/'), url.bucket),
                    None => format!("https://{}.blob.core.windows.net/{}", url.account, url.bucket),
                },
            ),
        };
        Ok(ObjectBackend {
            store,
            prefix: url.prefix.clone(),
            location,
            secrets,
            runtime,
            service: url.service,
            s3,
            lock: None,
            lock_store: Mutex::new(None),
            lock_unsupported: AtomicBool::new(false),
            raw,
            signer,
            container_url,
        })
    }

    /// Sets a storage-level lock on the packs, index files, snapshots and
    /// WAL files this backend creates from now on (S3 Object Lock; Azure
    /// version-level immutability policies; see `lock.rs`). Config, key and hold objects are never locked: keys are
    /// replaced when a passphrase changes, and a hold must be liftable.
    #[must_use]
    pub fn with_lock(mut self, lock: Option<Lock>) -> Self {
        self.lock = lock;
        self
    }

    /// The S3 client that creates objects under `lock`, for today's date.
    fn lock_store(&self, lock: Lock) -> Result<(String, Arc<dyn ObjectStore>), BackendError> {
        let until = lock::s3_date(lock.until(jiff::Timestamp::now()));
        let mut cached = self.lock_store.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((date, store)) = cached.as_ref()
            && *date == until
        {
            return Ok((until, Arc::clone(store)));
        }
        let parts = self.s3.as_ref().ok_or_else(|| BackendError::new(ErrorKind::Other, &self.location, "", "storage locks are set on S3 only"))?;
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-object-lock-mode", HeaderValue::from_static(lock.mode.s3_name()));
        headers.insert("x-amz-object-lock-retain-until-date", HeaderValue::from_str(&until).expect("a date is a valid header"));
        // A PUT that sets a lock must carry an integrity checksum: S3 (and
        // moto) look for Content-MD5 or this header, next to the
        // x-amz-checksum-sha256 that `with_checksum_algorithm` adds.
        headers.insert("x-amz-sdk-checksum-algorithm", HeaderValue::from_static("SHA256"));
        let store = s3_builder(parts)
            .with_client_options(parts.client.clone().with_default_headers(headers))
            .with_checksum_algorithm(Checksum::SHA256)
            .build()
            .map_err(|e| BackendError::new(ErrorKind::Other, &self.location, "", redact(&format!("cannot configure the storage client: {e}"), &self.secrets)))?;
        let store: Arc<dyn ObjectStore> = Arc::new(LimitStore::new(store, MAX_REQUESTS));
        *cached = Some((until.clone(), Arc::clone(&store)));
        Ok((until, store))
    }

    /// Creates an object through `store` (the plain client or the lock
    /// client): one PUT with `If-None-Match: *`.
    fn create_with(&self, store: &Arc<dyn ObjectStore>, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        let key = self.key(kind, name);
        let payload = PutPayload::from(bytes.to_vec());
        self.retrying(|_| {
            let store = Arc::clone(store);
            let (k, p) = (key.clone(), payload.clone());
            let r = self.run(async move { store.put_opts(&k, p, PutOptions { mode: PutMode::Create, ..PutOptions::default() }).await });
            match r.map(|_| ()).map_err(|e| self.err(key.as_ref(), &e)) {
                // An earlier attempt whose answer was lost (ours, or one
                // object_store retried by itself) may have created the
                // object: if it holds exactly these bytes, the create
                // succeeded. If nothing is there, the refusal was a
                // transient conflict (S3 answers 409 to overlapping
                // conditional PUTs): try again.
                Err(e) if e.kind == ErrorKind::AlreadyExists => match self.read(kind, name) {
                    Ok(existing) if existing == bytes => Ok(()),
                    Ok(_) => Err(e),
                    Err(r) if r.kind == ErrorKind::NotFound => Err(BackendError::new(ErrorKind::Unavailable, &self.location, key.as_ref(), format!("create refused but no object found ({}); trying again", e.message))),
                    Err(r) => Err(r),
                },
                // A create-only Azure SAS (`c`, no `w`) is refused a Put
                // Blob over an existing name with 403, not 409: the name is
                // taken, which callers must be told as such (a WAL name
                // another writer took, the same file pushed again).
                Err(e) if e.kind == ErrorKind::PermissionDenied && self.service == Service::Azure => match self.read(kind, name) {
                    Ok(existing) if existing == bytes => Ok(()),
                    Ok(_) => Err(BackendError::new(ErrorKind::AlreadyExists, &self.location, key.as_ref(), "an object of this name exists".to_owned())),
                    Err(_) => Err(e),
                },
                other => other,
            }
        })
    }

    /// One raw signed request on the bucket or container (`path` starts
    /// with `/` or `?`).
    fn raw_request(&self, method: &'static str, path: &str) -> Result<lock::Answer, BackendError> {
        self.raw_send(&lock::RawRequest { method, url: format!("{}{path}", self.container_url), headers: Vec::new(), body: Vec::new() }, path)
    }

    /// Sends a raw request; `what` names it in errors (never the URL, which
    /// may carry a SAS).
    fn raw_send(&self, raw: &lock::RawRequest, what: &str) -> Result<lock::Answer, BackendError> {
        let client = self.raw.clone();
        let signer = self.signer.clone();
        let raw = raw.clone();
        self.run(async move { lock::send(client, &signer, &raw).await })
            .map_err(|e| BackendError::new(ErrorKind::Unavailable, &self.location, what, redact(&e, &self.secrets)))
    }

    /// Azure: sets the immutability policy of a blob just created (Set Blob
    /// Immutability Policy, see `lock.rs`). Never fails the create: a
    /// refusal (no permission, not implemented, container without
    /// version-level immutability) or a failure that outlasted the retries
    /// is warned about once, and the following blobs of this run are
    /// written without a policy. (Not trying again on every blob: Azurite
    /// answers 500 to any SAS-signed policy request, and six retried
    /// attempts per blob would slow a backup to a crawl; `status` then
    /// reports the newest snapshot unprotected.)
    fn set_azure_policy(&self, lock: Lock, kind: ObjectKind, name: &str) {
        let path = self.object_path(kind, name);
        let until = lock.until(jiff::Timestamp::now());
        let raw = lock::azure_policy_request(&format!("{}{path}", self.container_url), lock.mode, until);
        let answer = self.retrying(|_| match self.raw_send(&raw, &path) {
            // Server errors and throttling: try again, as object_store does.
            Ok(a) if matches!(a.status, 408 | 429 | 500 | 502 | 503 | 504) => {
                Err(BackendError::new(ErrorKind::Unavailable, &self.location, &path, format!("HTTP {} {}", a.status, a.tag("Code").unwrap_or_default())))
            }
            other => other,
        });
        match answer {
            Ok(a) if a.status == 200 => {
                tracing::debug!(object = name, mode = lock.mode.azure_name(), until = %lock::azure_date(until), "immutability policy set");
            }
            other => {
                let why = match other {
                    Ok(a) => lock::azure_policy_refusal(a.status, a.tag("Code").unwrap_or_default()),
                    Err(e) => format!("cannot set a blob's immutability policy ({})", e.message),
                };
                if !self.lock_unsupported.swap(true, Ordering::Relaxed) {
                    tracing::warn!(location = %self.location, object = %path, "{why}: this and the following blobs of this run have no immutability policy (docs/STORAGE.md)");
                }
            }
        }
    }

    fn object_path(&self, kind: ObjectKind, name: &str) -> String {
        format!("/{}", self.key(kind, name).as_ref())
    }

    /// Runs a request on the backend's runtime and waits for it. Works from
    /// any thread, including one that belongs to another async runtime
    /// (the request runs on this backend's own worker threads).
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().expect("the storage runtime dropped a request")
    }

    /// Runs an operation again when it failed in a way `object_store`
    /// does not retry by itself: a connection closed or timed out after a
    /// non-idempotent request was sent (a conditional PUT), a response body
    /// cut short. Backoff with full jitter, six attempts at most; other
    /// failures are returned at once.
    fn retrying<T>(&self, mut op: impl FnMut(u32) -> Result<T, BackendError>) -> Result<T, BackendError> {
        let mut attempt = 1;
        loop {
            match op(attempt) {
                Err(e) if e.kind == ErrorKind::Unavailable && attempt < ATTEMPTS => {
                    let cap = 100u64 << attempt.min(6);
                    let mut r = [0u8; 8];
                    let jitter = if getrandom::fill(&mut r).is_ok() { u64::from_le_bytes(r) % cap } else { cap / 2 };
                    tracing::debug!(error = %e, attempt, "storage request failed, trying again");
                    std::thread::sleep(Duration::from_millis(50 + jitter));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn key(&self, kind: ObjectKind, name: &str) -> StorePath {
        let rel = kind.path(name);
        if self.prefix.is_empty() { StorePath::from(rel) } else { StorePath::from(format!("{}/{rel}", self.prefix)) }
    }

    /// A repository is never mixed into other objects: the prefix must
    /// hold nothing yet (one listing request, stopped at the first object).
    fn refuse_other_objects(&self) -> Result<(), BackendError> {
        let prefix = if self.prefix.is_empty() { None } else { Some(StorePath::from(self.prefix.as_str())) };
        let first = self.retrying(|_| {
            let store = Arc::clone(&self.store);
            let p = prefix.clone();
            let r: Result<Option<String>, object_store::Error> = self.run(async move {
                let mut s = store.list(p.as_ref());
                match s.next().await {
                    Some(m) => Ok(Some(m?.location.to_string())),
                    None => Ok(None),
                }
            });
            r.map_err(|e| self.err("", &e))
        })?;
        match first {
            None => Ok(()),
            Some(key) => {
                let rel = if self.prefix.is_empty() { key.as_str() } else { key.strip_prefix(&format!("{}/", self.prefix)).unwrap_or(&key) };
                Err(BackendError::new(ErrorKind::AlreadyExists, &self.location, "", crate::not_empty_message(rel)))
            }
        }
    }

    fn kind_prefix(&self, kind: ObjectKind) -> String {
        match (self.prefix.is_empty(), kind.dir()) {
            (true, d) => format!("{d}/"),
            (false, "") => format!("{}/", self.prefix),
            (false, d) => format!("{}/{d}/", self.prefix),
        }
    }

    fn err(&self, object: &str, e: &object_store::Error) -> BackendError {
        use object_store::Error as E;
        let chain = summarize(&error_chain(e));
        let kind = match e {
            E::NotFound { .. } => ErrorKind::NotFound,
            E::AlreadyExists { .. } | E::Precondition { .. } => ErrorKind::AlreadyExists,
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorKind::PermissionDenied,
            // Listings and other requests report the HTTP status only in
            // the message.
            E::Generic { .. } => match http_status(&chain) {
                Some(404) => ErrorKind::NotFound,
                Some(401 | 403) => ErrorKind::PermissionDenied,
                Some(409 | 412) => ErrorKind::AlreadyExists,
                Some(400..=499) if !matches!(http_status(&chain), Some(408 | 429)) => ErrorKind::Other,
                // Server errors, throttling and transport failures that
                // outlasted the retries.
                _ => ErrorKind::Unavailable,
            },
            _ => ErrorKind::Other,
        };
        BackendError::new(kind, &self.location, object, redact(&chain, &self.secrets))
    }
}

/// A range request that starts or ends past the end of the object: HTTP
/// 416, or `object_store`'s own check of the `Content-Range` it got back.
/// (Only these: a message merely containing "416" or "range" can be an
/// elapsed time, a pack name or a bucket name.)
fn is_past_end(e: &object_store::Error) -> bool {
    let chain = error_chain(e);
    http_status(&chain) == Some(416) || (chain.contains("Wanted range starting at") && chain.contains("bytes long"))
}

/// The HTTP status a message reports, as `object_store` words it.
fn http_status(msg: &str) -> Option<u16> {
    let i = msg.find("status code: ")? + "status code: ".len();
    msg[i..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Replaces an XML error body by its code and message, on one line.
fn summarize(msg: &str) -> String {
    let Some(i) = msg.find("<?xml") else { return msg.to_owned() };
    let tag = |t: &str| -> Option<String> {
        let open = format!("<{t}>");
        let a = msg[i..].find(&open)? + i + open.len();
        let b = msg[a..].find(&format!("</{t}>"))? + a;
        Some(msg[a..b].split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let detail = match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => String::new(),
    };
    format!("{}{detail}", &msg[..i])
}

/// The error and its sources on one line: the top-level message of
/// `object_store` alone often hides the HTTP status.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s.replace('\n', " ")
}

/// Removes secrets from a message: the known secret values, and any
/// `sig=` (SAS signature) or `X-Amz-Signature=` query value.
fn redact(msg: &str, secrets: &[String]) -> String {
    let mut out = msg.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "***");
    }
    for marker in ["sig=", "Signature=", "X-Amz-Security-Token="] {
        let mut from = 0;
        while let Some(i) = out[from..].find(marker) {
            let start = from + i + marker.len();
            let end = out[start..].find(|c: char| c == '&' || c == ' ' || c == '"' || c == '\'' || c == ')').map_or(out.len(), |j| start + j);
            out.replace_range(start..end, "***");
            from = start + 3;
        }
    }
    out
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Backend for ObjectBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn prefers_whole_objects(&self) -> bool {
        true
    }

    fn prepare(&self) -> Result<(), BackendError> {
        // Object stores have no folders to make; the bucket or container
        // is created by its administrator (with its versioning, lock and
        // access policies), never by a backup host.
        match self.size(ObjectKind::Config, "") {
            Ok(_) => return Err(BackendError::new(ErrorKind::AlreadyExists, &self.location, "config", "a repository already exists here")),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // A missing config also answers 404 when the bucket itself is
        // missing; a listing tells the two apart.
        match self.list(ObjectKind::Key) {
            Ok(_) => self.refuse_other_objects(),
            Err(e) if e.kind == ErrorKind::NotFound => Err(BackendError::new(
                ErrorKind::NotFound,
                &self.location,
                "",
                "the bucket or container does not exist (or these credentials cannot see it): have the storage administrator create it",
            )),
            Err(e) => Err(e),
        }
    }

    fn create(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        let lockable = matches!(kind, ObjectKind::Pack | ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Wal);
        if let Some(lock) = self.lock.filter(|_| lockable && !self.lock_unsupported.load(Ordering::Relaxed)) {
            if self.service == Service::Azure {
                // Azure takes the policy in a second request (see lock.rs).
                self.create_with(&self.store, kind, name, bytes)?;
                self.set_azure_policy(lock, kind, name);
                return Ok(());
            }
            let (until, store) = self.lock_store(lock)?;
            match self.create_with(&store, kind, name, bytes) {
                Err(e) if e.kind == ErrorKind::Other && lock::is_missing_object_lock(&e.message) => {
                    if !self.lock_unsupported.swap(true, Ordering::Relaxed) {
                        tracing::warn!(location = %self.location, "the bucket has no Object Lock: objects are written without a retain-until date (have the bucket's administrator enable Object Lock; see docs/STORAGE.md)");
                    }
                }
                other => {
                    if other.is_ok() {
                        tracing::debug!(object = name, mode = lock.mode.s3_name(), until, "created with a storage lock");
                    }
                    return other;
                }
            }
        }
        self.create_with(&self.store, kind, name, bytes)
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, BackendError> {
        let key = self.key(kind, name);
        self.retrying(|_| {
            let store = Arc::clone(&self.store);
            let k = key.clone();
            let r = self.run(async move {
                match store.get(&k).await {
                    Ok(g) => g.bytes().await,
                    Err(e) => Err(e),
                }
            });
            r.map(|b| b.to_vec()).map_err(|e| self.err(key.as_ref(), &e))
        })
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        let key = self.key(kind, name);
        if length == 0 {
            return Ok(Vec::new());
        }
        self.retrying(|_| {
            let store = Arc::clone(&self.store);
            let k = key.clone();
            let range: Range<u64> = offset..offset + length;
            match self.run(async move { store.get_range(&k, range).await }) {
                Ok(b) if b.len() as u64 == length => Ok(b.to_vec()),
                Ok(b) => Err(BackendError::new(
                    ErrorKind::Truncated,
                    &self.location,
                    key.as_ref(),
                    format!("object is shorter than {} bytes ({} returned from offset {offset}): truncated", offset + length, b.len()),
                )),
                // A range past the end of the object: the object is shorter
                // than the index says. Damage, not a failure to retry.
                Err(e) if is_past_end(&e) => {
                    let size = self.size(kind, name).ok();
                    Err(BackendError::new(
                        ErrorKind::Truncated,
                        &self.location,
                        key.as_ref(),
                        format!("object is shorter than {} bytes{}: truncated", offset + length, size.map(|s| format!(" ({s} bytes)")).unwrap_or_default()),
                    ))
                }
                Err(e) => Err(self.err(key.as_ref(), &e)),
            }
        })
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, BackendError> {
        if kind == ObjectKind::Config {
            return match self.size(kind, "") {
                Ok(size) => Ok(vec![ObjectInfo { name: "config".into(), size }]),
                Err(e) if e.kind == ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            };
        }
        let prefix = self.kind_prefix(kind);
        let listed = self.retrying(|_| {
            let store = Arc::clone(&self.store);
            let p = StorePath::from(prefix.trim_end_matches('/'));
            let r: Result<Vec<(String, u64)>, object_store::Error> = self.run(async move {
                let mut out = Vec::new();
                let mut s = store.list(Some(&p));
                while let Some(m) = s.next().await {
                    let m = m?;
                    out.push((m.location.to_string(), m.size));
                }
                Ok(out)
            });
            r.map_err(|e| self.err(&prefix, &e))
        })?;
        let mut out: Vec<ObjectInfo> = listed
            .into_iter()
            .filter_map(|(key, size)| key.strip_prefix(&prefix).map(|rel| ObjectInfo { name: kind.name_from_relative(rel), size }))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64, BackendError> {
        let key = self.key(kind, name);
        self.retrying(|_| {
            let store = Arc::clone(&self.store);
            let k = key.clone();
            let r = self.run(async move { store.head(&k).await });
            r.map(|m| m.size).map_err(|e| self.err(key.as_ref(), &e))
        })
    }

    fn immutability(&self) -> Result<ServiceImmutability, BackendError> {
        let denied = |what: &str, a: &lock::Answer, fix: &str| {
            let code = a.tag("Code").unwrap_or_default().to_owned();
            let kind = if matches!(a.status, 401 | 403) { ErrorKind::PermissionDenied } else { ErrorKind::Other };
            Err(BackendError::new(kind, &self.location, "", format!("cannot read the {what}: HTTP {} {code}{fix}", a.status)))
        };
        match self.service {
            Service::S3 => {
                let config = self.raw_request("GET", "?object-lock")?;
                let versioning = self.raw_request("GET", "?versioning")?;
                let versioning = match versioning.status {
                    200 => versioning.tag("Status").unwrap_or("never enabled").to_owned(),
                    _ => return denied("bucket's versioning", &versioning, " (grant s3:GetBucketVersioning)"),
                };
                match config.status {
                    200 if config.tag("ObjectLockEnabled") == Some("Enabled") => {
                        let default = match (config.tag("Mode"), config.tag("Days").map(|d| format!("{d} days")).or_else(|| config.tag("Years").map(|y| format!("{y} years")))) {
                            (Some(m), Some(p)) => format!("{m} {p}"),
                            _ => "none".into(),
                        };
                        Ok(ServiceImmutability { supported: true, detail: format!("Object Lock enabled; versioning {versioning}; default retention {default}") })
                    }
                    200 | 404 => Ok(ServiceImmutability {
                        supported: false,
                        detail: format!("the bucket has no Object Lock (versioning {versioning}); only its administrator can enable it (see docs/STORAGE.md)"),
                    }),
                    _ => denied("bucket's Object Lock configuration", &config, " (grant s3:GetBucketObjectLockConfiguration)"),
                }
            }
            Service::Azure => {
                let props = self.raw_request("HEAD", "?restype=container")?;
                if props.status != 200 {
                    return denied("container's properties", &props, " (this credential may not read them: ask with the administrator's)");
                }
                let yes = |h: &str| props.header(h).is_some_and(|v| v.eq_ignore_ascii_case("true"));
                let (versioned, policy, hold) = (yes("x-ms-immutable-storage-with-versioning-enabled"), yes("x-ms-has-immutability-policy"), yes("x-ms-has-legal-hold"));
                let detail = if versioned || policy || hold {
                    format!("version-level immutability {}; container immutability policy {}; container legal hold {}", on(versioned), on(policy), on(hold))
                } else {
                    "the container reports no immutability (no version-level immutability, which the policies reprise sets on blobs need; no time-based retention policy; no legal hold); Azurite implements none of them".into()
                };
                Ok(ServiceImmutability { supported: policy || hold || versioned, detail })
            }
        }
    }

    fn object_lock(&self, kind: ObjectKind, name: &str) -> Result<Option<ObjectLock>, BackendError> {
        let path = self.object_path(kind, name);
        let a = self.raw_request("HEAD", &path)?;
        match a.status {
            200 => {}
            404 => return Err(BackendError::new(ErrorKind::NotFound, &self.location, &path, "no such object")),
            s => return Err(BackendError::new(if matches!(s, 401 | 403) { ErrorKind::PermissionDenied } else { ErrorKind::Other }, &self.location, &path, format!("cannot read the object's lock: HTTP {s}"))),
        }
        let (mode, until, hold) = match self.service {
            Service::S3 => ("x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold"),
            Service::Azure => ("x-ms-immutability-policy-mode", "x-ms-immutability-policy-until-date", "x-ms-legal-hold"),
        };
        let found = ObjectLock {
            mode: a.header(mode).map(str::to_owned),
            retain_until: a.header(until).and_then(lock::parse_date),
            legal_hold: a.header(hold).is_some_and(|v| v.eq_ignore_ascii_case("on") || v.eq_ignore_ascii_case("true")),
        };
        Ok((found != ObjectLock::default()).then_some(found))
    }

    fn extend_lock(&self, kind: ObjectKind, name: &str, mode: lock::LockMode, until: jiff::Timestamp) -> Result<(), BackendError> {
        let path = self.object_path(kind, name);
        let url = format!("{}{path}", self.container_url);
        let raw = match self.service {
            Service::S3 => lock::s3_retention_request(&url, mode, until),
            Service::Azure => lock::azure_policy_request(&url, mode, until),
        };
        // Setting the same retention twice is harmless: retried like a
        // read on server errors and throttling.
        let a = self.retrying(|_| match self.raw_send(&raw, &path) {
            Ok(a) if matches!(a.status, 408 | 429 | 500 | 502 | 503 | 504) => {
                Err(BackendError::new(ErrorKind::Unavailable, &self.location, &path, format!("HTTP {} {}", a.status, a.tag("Code").unwrap_or_default())))
            }
            other => other,
        })?;
        if matches!(a.status, 200 | 204) {
            return Ok(());
        }
        // Status and error code only: a body may echo the URL (a SAS).
        let code = a.tag("Code").unwrap_or_default();
        let (kind, message) = match (self.service, a.status) {
            (Service::Azure, s) => (if matches!(s, 401 | 403) { ErrorKind::PermissionDenied } else { ErrorKind::Other }, lock::azure_policy_refusal(s, code)),
            (Service::S3, s @ (401 | 403)) => (
                ErrorKind::PermissionDenied,
                format!("this credential may not extend object locks (HTTP {s} {code}): grant the operator's role s3:PutObjectRetention on the repository's prefix"),
            ),
            (Service::S3, 404) => (ErrorKind::NotFound, format!("no such object (HTTP 404 {code})")),
            (Service::S3, s) => (ErrorKind::Other, format!("the bucket refused to extend the object's lock (HTTP {s} {code})")),
        };
        Err(BackendError::new(kind, &self.location, &path, message))
    }

    fn remove(&self, kind: ObjectKind, name: &str) -> Result<(), BackendError> {
        let key = self.key(kind, name);
        self.retrying(|attempt| {
            let store = Arc::clone(&self.store);
            let k = key.clone();
            let r = self.run(async move { store.delete(&k).await });
            match r.map_err(|e| self.err(key.as_ref(), &e)) {
                // A retried delete whose first answer was lost.
                Err(e) if e.kind == ErrorKind::NotFound && attempt > 1 => Ok(()),
                other => other,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_display_without_secrets() {
        let u = ObjectUrl::parse("s3://backups/prod/repo?endpoint=http://127.0.0.1:9000&region=eu-west-3").unwrap().unwrap();
        assert_eq!((u.service, u.bucket.as_str(), u.prefix.as_str()), (Service::S3, "backups", "prod/repo"));
        assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(u.region.as_deref(), Some("eu-west-3"));
        let a = ObjectUrl::parse("azure://acct/ctr").unwrap().unwrap();
        assert_eq!((a.service, a.account.as_str(), a.bucket.as_str(), a.prefix.as_str()), (Service::Azure, "acct", "ctr", ""));
        assert_eq!(a.display(), "azure://acct/ctr");
        assert!(ObjectUrl::parse("/srv/repo").is_none());
        assert!(ObjectUrl::parse("s3://").unwrap().is_err());
        assert!(ObjectUrl::parse("azure://acct").unwrap().is_err());
        assert!(ObjectUrl::parse("s3://b/a//r").unwrap().is_err());
        assert!(ObjectUrl::parse("s3://b/x~y").unwrap().is_err());
        assert!(ObjectUrl::parse("s3://b/a/../r").unwrap().is_err());
        let e = ObjectUrl::parse("s3://b?secret_access_key=x").unwrap().unwrap_err();
        assert!(e.contains("environment"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let m = redact("GET http://h/c/b?sv=2021&sig=abc%2Bdef&se=1 failed, key SECRETKEY", &["SECRETKEY".into()]);
        assert!(!m.contains("abc%2Bdef") && !m.contains("SECRETKEY"), "{m}");
        assert!(m.contains("sig=***"), "{m}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Bb%3D%3D"), "a+b==");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%2"), "bad%2");
    }
}

//! A repository in an S3 bucket (AWS S3 or any S3-compatible server: SeaweedFS, MinIO, Ceph…).
//!
//! * Keys live under an optional prefix: `s3:http://host:port/bucket/some/prefix` stores
//!   `data/ab…` as `some/prefix/data/ab…`.
//! * Objects up to [`S3Config::multipart_threshold`] are one `PutObject`; larger ones are a
//!   multipart upload whose parts go up concurrently and which is aborted on failure (also when
//!   the `put` future is dropped). Either way the object appears whole or not at all.
//! * `if_absent` puts send `If-None-Match: *` (on `PutObject` or `CompleteMultipartUpload`).
//! * Optional Object Lock retention ([`S3Config::object_lock`]) on every write.
//! * Throttling (503 SlowDown, 429) and 5xx answers, connection failures and timeouts are
//!   retried with exponential backoff by the SDK's standard retry strategy; an endpoint that
//!   cannot be reached fails as [`Error::Unreachable`] in well under a minute.
//! * Credentials never appear in messages, [`S3Store::describe`] or `Debug` output.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::InterceptorContext;
use aws_sdk_s3::config::retry::{ClassifyRetry, RetryAction, RetryConfig};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::upload_part::UploadPartError;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart,
    CreateBucketConfiguration, ObjectLockMode,
};
use bytes::Bytes;

use crate::{Error, ObjectMeta, ObjectStore, PutOptions, Result};

const MIB: u64 = 1024 * 1024;
/// S3's smallest allowed part (but the last).
const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part count.
const MAX_PARTS: u64 = 10_000;

/// Object Lock retention mode applied to every object written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` can still delete locked versions.
    Governance,
    /// Nobody, not even the root account, can delete a locked version before its date.
    Compliance,
}

impl LockMode {
    fn sdk(self) -> ObjectLockMode {
        match self {
            LockMode::Governance => ObjectLockMode::Governance,
            LockMode::Compliance => ObjectLockMode::Compliance,
        }
    }
}

/// How to reach a bucket. Build it with [`S3Config::from_url`], then add credentials with
/// [`S3Config::with_env_credentials`] or [`S3Config::with_credentials`].
#[derive(Clone)]
pub struct S3Config {
    /// `http(s)://host[:port]`, no trailing slash.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading or trailing `/`; empty for none.
    pub prefix: String,
    /// Signing region (default `us-east-1`).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never shown by `Debug`).
    pub secret_access_key: String,
    /// Session token for temporary credentials (never shown by `Debug`).
    pub session_token: Option<String>,
    /// Objects larger than this go up as multipart uploads (default 16 MiB).
    pub multipart_threshold: u64,
    /// Multipart part size (default 8 MiB; at least 5 MiB, grown when an object would need
    /// more than 10 000 parts).
    pub part_size: u64,
    /// Parts uploaded at the same time (default 4).
    pub upload_concurrency: usize,
    /// Attempts per request, the first included (default 4).
    pub max_attempts: u32,
    /// First retry backoff; later ones grow exponentially, with jitter, up to 20 s (default 1 s).
    pub initial_backoff: Duration,
    /// TCP connect (and TLS handshake) timeout (default 5 s).
    pub connect_timeout: Duration,
    /// Timeout of one attempt of one request, upload included (default 300 s).
    pub attempt_timeout: Duration,
    /// Object Lock retention put on every object written: mode and days from the write.
    /// The bucket must have been created with Object Lock enabled.
    pub object_lock: Option<(LockMode, u32)>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .field("upload_concurrency", &self.upload_concurrency)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("object_lock", &self.object_lock)
            .finish()
    }
}

impl S3Config {
    /// A configuration with defaults and no credentials.
    pub fn new(endpoint: impl Into<String>, bucket: impl Into<String>, prefix: impl Into<String>) -> S3Config {
        S3Config {
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            bucket: bucket.into(),
            prefix: prefix.into().trim_matches('/').to_owned(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: None,
            multipart_threshold: 16 * MIB,
            part_size: 8 * MIB,
            upload_concurrency: 4,
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(300),
            object_lock: None,
        }
    }

    /// Parse `http(s)://host[:port]/bucket[/prefix]` (the part of an `s3:` location after `s3:`).
    pub fn from_url(rest: &str) -> Result<S3Config> {
        let bad = |why: String| Error::BadLocation { location: format!("s3:{}", redact_userinfo(rest)), why };
        let (scheme, after) = rest.split_once("://").ok_or_else(|| {
            bad("expected s3:http(s)://host[:port]/bucket[/prefix], e.g. s3:https://s3.example.com/my-bucket/repo".into())
        })?;
        if scheme != "http" && scheme != "https" {
            return Err(bad(format!("the endpoint scheme must be http or https, not {scheme:?}")));
        }
        if after.contains(['?', '#']) {
            return Err(bad("the location must not contain a query string or fragment".into()));
        }
        let (host, path) = after.split_once('/').unwrap_or((after, ""));
        if host.is_empty() {
            return Err(bad("the endpoint has no host name".into()));
        }
        if host.contains('@') {
            return Err(bad(
                "credentials do not belong in the location: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
                    .into(),
            ));
        }
        // A port (after the last ':' unless that is inside an IPv6 literal).
        if let Some((h, port)) = host.rsplit_once(':').filter(|(_, p)| !p.contains(']')) {
            if h.is_empty() {
                return Err(bad("the endpoint has no host name".into()));
            }
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(bad(format!("the endpoint port {port:?} is not a number from 1 to 65535"))),
            }
        }
        let path = path.trim_end_matches('/');
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket: expected http(s)://host[:port]/bucket[/prefix]".into()));
        }
        check_bucket_name(bucket).map_err(bad)?;
        if prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") && !prefix.is_empty() {
            return Err(bad(format!("the key prefix {prefix:?} has an empty, '.' or '..' path segment")));
        }
        Ok(S3Config::new(format!("{scheme}://{host}"), bucket, prefix))
    }

    /// Take credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN` when set), and the region from `AWS_REGION` (default `us-east-1`).
    pub fn with_env_credentials(self) -> Result<S3Config> {
        self.with_credentials_from(|name| std::env::var(name).ok())
    }

    /// [`S3Config::with_env_credentials`] over any variable lookup (for tests).
    pub fn with_credentials_from(mut self, var: impl Fn(&str) -> Option<String>) -> Result<S3Config> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let (id, secret) = (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"));
        let missing: Vec<&str> = [("AWS_ACCESS_KEY_ID", id.is_none()), ("AWS_SECRET_ACCESS_KEY", secret.is_none())]
            .into_iter()
            .filter_map(|(n, m)| m.then_some(n))
            .collect();
        let (Some(id), Some(secret)) = (id, secret) else {
            return Err(Error::BadLocation {
                location: self.describe(),
                why: format!(
                    "no S3 credentials: set {} in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                     optionally AWS_SESSION_TOKEN and AWS_REGION)",
                    missing.join(" and ")
                ),
            });
        };
        self.access_key_id = id;
        self.secret_access_key = secret;
        self.session_token = get("AWS_SESSION_TOKEN");
        if let Some(region) = get("AWS_REGION") {
            self.region = region;
        }
        Ok(self)
    }

    /// Set static credentials.
    pub fn with_credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> S3Config {
        self.access_key_id = access_key_id.into();
        self.secret_access_key = secret_access_key.into();
        self
    }

    /// `s3:<endpoint>/<bucket>[/<prefix>]`, without credentials.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3:{}/{}", self.endpoint, self.bucket)
        } else {
            format!("s3:{}/{}/{}", self.endpoint, self.bucket, self.prefix)
        }
    }
}

/// `http://user:secret@host/…` → `http://***@host/…` (never echo credentials).
fn redact_userinfo(loc: &str) -> String {
    let Some((scheme, after)) = loc.split_once("://") else { return loc.to_owned() };
    let authority_end = after.find('/').unwrap_or(after.len());
    match after[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &after[at + 1..]),
        None => loc.to_owned(),
    }
}

fn check_bucket_name(b: &str) -> Result<(), String> {
    let ok_chars = b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
    let ends_ok = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&b.len()) || !ok_chars || !ends_ok(b.bytes().next()) || !ends_ok(b.bytes().last()) {
        return Err(format!(
            "{b:?} is not a valid bucket name: use 3 to 63 lowercase letters, digits, '.' and '-', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Retries bare HTTP 429 answers (the standard strategy only knows throttling by error code).
#[derive(Debug)]
struct TooManyRequests;

impl ClassifyRetry for TooManyRequests {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response() {
            Some(r) if r.status().as_u16() == 429 => RetryAction::throttling_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "HTTP 429 Too Many Requests"
    }
}

/// A store in an S3 bucket.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    cfg: S3Config,
    name: String,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store for `cfg`. No network access happens here.
    pub fn new(cfg: S3Config) -> Result<S3Store> {
        let name = cfg.describe();
        let bad = |why: String| Error::BadLocation { location: name.clone(), why };
        if cfg.access_key_id.is_empty() || cfg.secret_access_key.is_empty() {
            return Err(bad("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into()));
        }
        if cfg.part_size < MIN_PART_SIZE {
            return Err(bad(format!("the multipart part size must be at least 5 MiB, not {}", cfg.part_size)));
        }
        if cfg.upload_concurrency == 0 || cfg.max_attempts == 0 {
            return Err(bad("upload concurrency and attempts must be at least 1".into()));
        }
        if let Some((_, 0)) = cfg.object_lock {
            return Err(bad("the Object Lock retention must be at least one day".into()));
        }
        let creds = Credentials::new(
            &cfg.access_key_id,
            &cfg.secret_access_key,
            cfg.session_token.clone(),
            None,
            "conservator",
        );
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(creds)
            .region(Region::new(cfg.region.clone()))
            .endpoint_url(&cfg.endpoint)
            .force_path_style(true)
            .retry_config(
                RetryConfig::standard().with_max_attempts(cfg.max_attempts).with_initial_backoff(cfg.initial_backoff),
            )
            .retry_classifier(TooManyRequests)
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(cfg.connect_timeout)
                    .operation_attempt_timeout(cfg.attempt_timeout)
                    .build(),
            )
            .build();
        Ok(S3Store { client: Client::from_conf(conf), cfg, name })
    }

    /// The SDK client (for tests and tools that need raw S3 calls).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &S3Config {
        &self.cfg
    }

    /// The full object key of a store key (with the prefix).
    pub fn object_key(&self, key: &str) -> String {
        if self.cfg.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.cfg.prefix) }
    }

    /// Create the bucket unless it exists (optionally with Object Lock enabled, which also
    /// enables versioning). A bucket that already exists is left as it is.
    pub async fn create_bucket_if_missing(&self, object_lock: bool) -> Result<()> {
        match self.client.head_bucket().bucket(&self.cfg.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
            Err(e) => return Err(self.map_err("create bucket", "", e)),
        }
        let mut req = self.client.create_bucket().bucket(&self.cfg.bucket);
        if self.cfg.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.cfg.region.as_str()))
                    .build(),
            );
        }
        if object_lock {
            req = req.object_lock_enabled_for_bucket(true);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
            Err(e) => Err(self.map_err("create bucket", "", e)),
        }
    }

    fn retention(&self) -> Option<(ObjectLockMode, DateTime)> {
        self.cfg.object_lock.map(|(mode, days)| {
            let until = SystemTime::now() + Duration::from_secs(u64::from(days) * 86_400);
            (mode.sdk(), DateTime::from(until))
        })
    }

    /// Map an SDK error to the crate's error.
    fn map_err<E>(&self, op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let store = self.name.clone();
        let key = key.to_owned();
        let detail = DisplayErrorContext(&err).to_string();
        match &err {
            SdkError::DispatchFailure(d) if d.is_user() => {
                return Error::Other { store, op, key, detail, transient: false };
            }
            // Connection refused/reset, DNS, TLS, connect or attempt timeouts.
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                return Error::Unreachable { store, detail: format!("{op} {key}: {detail}") };
            }
            SdkError::ConstructionFailure(_) => {
                return Error::Other { store, op, key, detail, transient: false };
            }
            _ => {}
        }
        let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
        let code = err.code().unwrap_or("").to_owned();
        let detail = match (err.code(), err.message()) {
            (Some(c), Some(m)) => format!("{c}: {m} (HTTP {status})"),
            (Some(c), None) => format!("{c} (HTTP {status})"),
            _ if status != 0 => format!("HTTP {status}: {detail}"),
            _ => detail,
        };
        match (code.as_str(), status) {
            ("NoSuchBucket", _) => Error::BadLocation {
                location: store,
                why: format!(
                    "bucket {:?} does not exist at {}: create it first (e.g. `aws s3 mb s3://{}`)",
                    self.cfg.bucket, self.cfg.endpoint, self.cfg.bucket
                ),
            },
            ("NoSuchKey", _) | ("NotFound", _) | ("", 404) => Error::NotFound { store, key },
            ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AllAccessDisabled", _)
            | ("InvalidToken" | "ExpiredToken" | "AccountProblem", _)
            | (_, 401 | 403) => Error::Denied { store, op, key, detail },
            ("PreconditionFailed", _) | (_, 412) => Error::AlreadyExists { store, key },
            (_, 507) => Error::NoSpace { store, key, detail },
            ("SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout" | "InternalError", _)
            | ("ServiceUnavailable" | "ConditionalRequestConflict", _)
            | (_, 429 | 500..=599) => Error::Other { store, op, key, detail, transient: true },
            // No HTTP answer at all (a broken response): worth another try.
            (_, 0) => Error::Other { store, op, key, detail, transient: true },
            _ => Error::Other { store, op, key, detail, transient: false },
        }
    }

    async fn put_single(&self, key: &str, full: String, data: Bytes, opts: PutOptions) -> Result<()> {
        let mut req = self.client.put_object().bucket(&self.cfg.bucket).key(full).body(ByteStream::from(data));
        if opts.if_absent {
            req = req.if_none_match("*");
        }
        if let Some((mode, until)) = self.retention() {
            req = req.object_lock_mode(mode).object_lock_retain_until_date(until);
        }
        req.send().await.map(drop).map_err(|e| self.map_err("put", key, e))
    }

    async fn put_multipart(&self, key: &str, full: String, data: Bytes, opts: PutOptions) -> Result<()> {
        let len = data.len() as u64;
        let part_size = self.cfg.part_size.max(len.div_ceil(MAX_PARTS));
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Crc32);
        if let Some((mode, until)) = self.retention() {
            req = req.object_lock_mode(mode).object_lock_retain_until_date(until);
        }
        let created = req.send().await.map_err(|e| self.map_err("put", key, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(Error::Other {
                store: self.name.clone(),
                op: "put",
                key: key.to_owned(),
                detail: "CreateMultipartUpload returned no upload id".into(),
                transient: true,
            });
        };
        // From here on, a failure or a dropped future aborts the upload.
        // Every part task holds a clone of `inflight`; the receiver sees the channel close
        // once none is left, so the abort is sent after the last part request has ended and
        // no part can land on the server after it.
        let (inflight, parts_done) = tokio::sync::mpsc::channel::<()>(1);
        let mut guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.cfg.bucket.clone(),
            key: full.clone(),
            upload_id: upload_id.clone(),
            parts_done: Some(parts_done),
            armed: true,
        };
        let result = self.upload_parts_and_complete(key, &full, &upload_id, data, part_size, opts, inflight).await;
        if result.is_err() {
            guard.armed = false;
            // Best effort: the upload is invisible anyway, this only frees its parts.
            if let Some(rx) = guard.parts_done.take() {
                wait_parts_done(rx).await;
            }
            abort_fully(self.client.clone(), self.cfg.bucket.clone(), full.clone(), upload_id.clone()).await;
        }
        guard.armed = false;
        result
    }

    async fn upload_parts_and_complete(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        data: Bytes,
        part_size: u64,
        opts: PutOptions,
        inflight: tokio::sync::mpsc::Sender<()>,
    ) -> Result<()> {
        let len = data.len() as u64;
        type PartResult = std::result::Result<CompletedPart, SdkError<UploadPartError, HttpResponse>>;
        // Plain spawned tasks, not a JoinSet: when this future is dropped they run to the end
        // of their request (detached), and the abort waits for them (see `AbortGuard`).
        let mut tasks: std::collections::VecDeque<tokio::task::JoinHandle<PartResult>> = Default::default();
        let mut parts: Vec<CompletedPart> = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        loop {
            // Keep at most `upload_concurrency` parts in flight.
            while tasks.len() >= self.cfg.upload_concurrency || (offset >= len && !tasks.is_empty()) {
                let joined = tasks.pop_front().expect("the queue is not empty").await;
                let part = joined.map_err(|e| Error::Other {
                    store: self.name.clone(),
                    op: "put",
                    key: key.to_owned(),
                    detail: format!("part upload task failed: {e}"),
                    transient: false,
                })?;
                parts.push(part.map_err(|e| self.map_err("put", key, e))?);
            }
            if offset >= len {
                break;
            }
            let end = (offset + part_size).min(len);
            let body = data.slice(offset as usize..end as usize);
            let req = self
                .client
                .upload_part()
                .bucket(&self.cfg.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .body(ByteStream::from(body));
            let held = inflight.clone();
            tasks.push_back(tokio::spawn(async move {
                let _held = held;
                let out = req.send().await?;
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
                    .build())
            }));
            offset = end;
            number += 1;
        }
        parts.sort_by_key(|p| p.part_number());
        let mut req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
        if opts.if_absent {
            req = req.if_none_match("*");
        }
        req.send().await.map(drop).map_err(|e| self.map_err("put", key, e))
    }

    /// The size of `key` for an [`Error::Integrity`], or NotFound.
    async fn size_for_integrity(&self, key: &str, offset: u64, len: u64) -> Error {
        match self.head(key).await {
            Ok(Some(size)) => {
                Error::Integrity { store: self.name.clone(), key: key.to_owned(), offset, end: offset + len, size }
            }
            Ok(None) => Error::NotFound { store: self.name.clone(), key: key.to_owned() },
            Err(e) => e,
        }
    }

    fn body_err(&self, key: &str, e: impl std::error::Error) -> Error {
        Error::Other {
            store: self.name.clone(),
            op: "get",
            key: key.to_owned(),
            detail: format!("reading the object body failed: {}", DisplayErrorContext(e)),
            transient: true,
        }
    }
}

/// Aborts a multipart upload when dropped armed (the `put` future was cancelled).
struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    /// Closes when no part task is left.
    parts_done: Option<tokio::sync::mpsc::Receiver<()>>,
    armed: bool,
}

/// Wait (up to two minutes) until every part task of an upload has ended.
async fn wait_parts_done(mut rx: tokio::sync::mpsc::Receiver<()>) {
    let _ = tokio::time::timeout(Duration::from_secs(120), rx.recv()).await;
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, bucket, key, id) = (self.client.clone(), self.bucket.clone(), self.key.clone(), self.upload_id.clone());
            let parts_done = self.parts_done.take();
            rt.spawn(async move {
                if let Some(rx) = parts_done {
                    wait_parts_done(rx).await;
                }
                abort_fully(client, bucket, key, id).await;
            });
        }
    }
}

/// Abort a multipart upload (best effort: an upload left behind holds storage but is never
/// visible as an object; `cleanup_incomplete`, run by prune, removes what is left).
async fn abort_fully(client: Client, bucket: String, key: String, upload_id: String) {
    let _ = client.abort_multipart_upload().bucket(&bucket).key(&key).upload_id(&upload_id).send().await;
}

/// `bytes a-b/size` → size.
fn total_from_content_range(v: &str) -> Option<u64> {
    v.rsplit_once('/').and_then(|(_, total)| total.trim().parse().ok())
}

#[async_trait]
impl ObjectStore for S3Store {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn put_opts(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<()> {
        let full = self.object_key(key);
        if data.len() as u64 > self.cfg.multipart_threshold {
            self.put_multipart(key, full, data, opts).await
        } else {
            self.put_single(key, full, data, opts).await
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let out = self
            .client
            .get_object()
            .bucket(&self.cfg.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| self.map_err("get", key, e))?;
        let expected = out.content_length();
        let body = out.body.collect().await.map_err(|e| self.body_err(key, e))?.into_bytes();
        if let Some(n) = expected.filter(|&n| n >= 0 && n as u64 != body.len() as u64) {
            return Err(Error::Integrity {
                store: self.name.clone(),
                key: key.to_owned(),
                offset: 0,
                end: n as u64,
                size: body.len() as u64,
            });
        }
        Ok(body)
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
        if len == 0 {
            // An empty range cannot be expressed as a Range header.
            return match self.head(key).await? {
                Some(size) if offset <= size => Ok(Bytes::new()),
                Some(size) => {
                    Err(Error::Integrity { store: self.name.clone(), key: key.to_owned(), offset, end: offset, size })
                }
                None => Err(Error::NotFound { store: self.name.clone(), key: key.to_owned() }),
            };
        }
        let end = offset + len;
        let res = self
            .client
            .get_object()
            .bucket(&self.cfg.bucket)
            .key(self.object_key(key))
            .range(format!("bytes={offset}-{}", end - 1))
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e)
                if e.code() == Some("InvalidRange") || e.raw_response().is_some_and(|r| r.status().as_u16() == 416) =>
            {
                return Err(self.size_for_integrity(key, offset, len).await);
            }
            Err(e) => return Err(self.map_err("get", key, e)),
        };
        let ranged = out.content_range().is_some();
        let total = out.content_range().and_then(total_from_content_range);
        let body = out.body.collect().await.map_err(|e| self.body_err(key, e))?.into_bytes();
        let body = if ranged {
            body
        } else {
            // The server ignored the Range header and sent the whole object.
            let size = body.len() as u64;
            if end > size {
                return Err(Error::Integrity { store: self.name.clone(), key: key.to_owned(), offset, end, size });
            }
            body.slice(offset as usize..end as usize)
        };
        if (body.len() as u64) < len {
            return Err(match total {
                Some(size) => Error::Integrity { store: self.name.clone(), key: key.to_owned(), offset, end, size },
                None => self.size_for_integrity(key, offset, len).await,
            });
        }
        if body.len() as u64 > len {
            return Ok(body.slice(..len as usize));
        }
        Ok(body)
    }

    async fn head(&self, key: &str) -> Result<Option<u64>> {
        match self.client.head_object().bucket(&self.cfg.bucket).key(self.object_key(key)).send().await {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(self.map_err("head", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = if self.cfg.prefix.is_empty() { String::new() } else { format!("{}/", self.cfg.prefix) };
        let full = format!("{root}{prefix}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.cfg.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.map_err("list", prefix, e))?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                let Some(rel) = k.strip_prefix(&root) else { continue };
                out.push(ObjectMeta { key: rel.to_owned(), size: obj.size().unwrap_or(0).max(0) as u64 });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) && !t.is_empty() => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.client.delete_object().bucket(&self.cfg.bucket).key(self.object_key(key)).send().await {
            Ok(_) => Ok(()),
            Err(e) => match self.map_err("delete", key, e) {
                Error::NotFound { .. } => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn cleanup_incomplete(&self, older_than: Duration) -> Result<usize> {
        let root = if self.cfg.prefix.is_empty() { String::new() } else { format!("{}/", self.cfg.prefix) };
        let cutoff = SystemTime::now() - older_than;
        let mut removed = 0;
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.cfg.bucket)
                .prefix(&root)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.map_err("list uploads", &root, e))?;
            for u in page.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else { continue };
                let old = u.initiated().and_then(|t| SystemTime::try_from(*t).ok()).is_none_or(|t| t <= cutoff);
                if old {
                    self.client
                        .abort_multipart_upload()
                        .bucket(&self.cfg.bucket)
                        .key(key)
                        .upload_id(id)
                        .send()
                        .await
                        .map_err(|e| self.map_err("abort upload", key, e))?;
                    removed += 1;
                }
            }
            if page.is_truncated() == Some(true) && page.next_key_marker().is_some() {
                key_marker = page.next_key_marker().map(str::to_owned);
                id_marker = page.next_upload_id_marker().map(str::to_owned);
            } else {
                break;
            }
        }
        Ok(removed)
    }

    async fn probe(&self) -> Result<()> {
        let key = format!("locks/.probe-{:016x}", rand::random::<u64>());
        self.put(&key, Bytes::from_static(b"probe")).await?;
        self.delete(&key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        let c = S3Config::from_url("http://127.0.0.1:8333/bucket").unwrap();
        assert_eq!((c.endpoint.as_str(), c.bucket.as_str(), c.prefix.as_str()), ("http://127.0.0.1:8333", "bucket", ""));
        let c = S3Config::from_url("https://s3.example.com/my-bucket/some/prefix/").unwrap();
        assert_eq!(
            (c.endpoint.as_str(), c.bucket.as_str(), c.prefix.as_str()),
            ("https://s3.example.com", "my-bucket", "some/prefix")
        );
        assert_eq!(c.describe(), "s3:https://s3.example.com/my-bucket/some/prefix");
        assert_eq!(c.multipart_threshold, 16 * MIB);
        assert_eq!(c.part_size, 8 * MIB);
        assert_eq!(c.region, "us-east-1");
        let c = S3Config::from_url("http://[::1]:9000/bkt/p").unwrap();
        assert_eq!(c.endpoint, "http://[::1]:9000");
    }

    #[test]
    fn rejects_bad_locations() {
        for (loc, want) in [
            ("ftp://host/bucket", "scheme"),
            ("host/bucket", "expected s3:http(s)://"),
            ("http:///bucket", "no host"),
            ("http://host", "no bucket"),
            ("http://host/", "no bucket"),
            ("http://host:99999/bucket", "port"),
            ("http://host:abc/bucket", "port"),
            ("http://key:secret@host/bucket", "AWS_ACCESS_KEY_ID"),
            ("http://host/Bad_Bucket", "not a valid bucket name"),
            ("http://host/b", "not a valid bucket name"),
            ("http://host/bucket//x", "empty"),
            ("http://host/bucket/../x", "'..'"),
            ("http://host/bucket?x=1", "query"),
        ] {
            match S3Config::from_url(loc) {
                Err(Error::BadLocation { location, why }) => {
                    if !loc.contains('@') {
                        assert_eq!(location, format!("s3:{loc}"));
                    }
                    assert!(why.contains(want), "{loc}: {why:?} should mention {want:?}");
                }
                other => panic!("{loc}: expected BadLocation, got {other:?}"),
            }
        }
        let msg = S3Config::from_url("http://a:topsecret@host/bucket").unwrap_err().to_string();
        assert!(!msg.contains("topsecret") && msg.contains("s3:http://***@host/bucket"), "{msg}");
    }

    #[test]
    fn credentials_from_environment() {
        let base = S3Config::from_url("http://host:1/bucket/p").unwrap();
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
        };
        let c = base
            .clone()
            .with_credentials_from(env(&[("AWS_ACCESS_KEY_ID", "AKID1"), ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")]))
            .unwrap();
        assert_eq!((c.access_key_id.as_str(), c.secret_access_key.as_str(), c.region.as_str()), ("AKID1", "s3cr3t-value", "us-east-1"));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t-value") && dbg.contains("AKID1") && dbg.contains("redacted"), "{dbg}");
        let store = S3Store::new(c).unwrap();
        assert!(!format!("{store:?}").contains("s3cr3t-value"));
        assert_eq!(store.describe(), "s3:http://host:1/bucket/p");

        let c = base
            .clone()
            .with_credentials_from(env(&[
                ("AWS_ACCESS_KEY_ID", "AKID1"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
                ("AWS_REGION", "eu-west-3"),
                ("AWS_SESSION_TOKEN", "tok-secret"),
            ]))
            .unwrap();
        assert_eq!(c.region, "eu-west-3");
        assert!(!format!("{c:?}").contains("tok-secret"));

        for (vars, missing) in [
            (&[][..], "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in"),
            (&[("AWS_ACCESS_KEY_ID", "AKID1")][..], "set AWS_SECRET_ACCESS_KEY in"),
            (&[("AWS_SECRET_ACCESS_KEY", "hush")][..], "set AWS_ACCESS_KEY_ID in"),
            (&[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "hush")][..], "set AWS_ACCESS_KEY_ID in"),
        ] {
            let err = base.clone().with_credentials_from(env(vars)).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, Error::BadLocation { .. }) && msg.contains(missing), "{msg}");
            assert!(!msg.contains("hush"), "{msg}");
        }
    }

    #[test]
    fn content_range_total() {
        assert_eq!(total_from_content_range("bytes 0-9/100"), Some(100));
        assert_eq!(total_from_content_range("bytes */100"), Some(100));
        assert_eq!(total_from_content_range("bytes 0-9/*"), None);
    }

    /// A scripted HTTP server: answers each request with the next canned response.
    fn scripted_server(responses: Vec<String>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            let mut responses = responses.into_iter();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                // One request per connection ("Connection: close" in every answer).
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(resp) = responses.next() else { return };
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        (format!("http://{addr}"), count)
    }

    fn scripted_store(endpoint: &str) -> S3Store {
        let mut cfg = S3Config::from_url(&format!("{endpoint}/bucket")).unwrap().with_credentials("AKID", "secret");
        cfg.initial_backoff = Duration::from_millis(10);
        cfg.max_attempts = 3;
        S3Store::new(cfg).unwrap()
    }

    fn answer(status: &str, code: Option<&str>) -> String {
        let body = code.map(|c| format!("<Error><Code>{c}</Code><Message>scripted</Message></Error>")).unwrap_or_default();
        let ctype = if body.is_empty() { "" } else { "Content-Type: application/xml\r\n" };
        format!("HTTP/1.1 {status}\r\n{ctype}ETag: \"abc\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
    }
    fn slow_down() -> String {
        answer("503 Slow Down", Some("SlowDown"))
    }
    fn too_many() -> String {
        answer("429 Too Many Requests", None)
    }
    fn ok_put() -> String {
        answer("200 OK", None)
    }
    fn internal() -> String {
        answer("500 Internal Server Error", Some("InternalError"))
    }
    fn denied() -> String {
        answer("403 Forbidden", Some("SignatureDoesNotMatch"))
    }

    #[tokio::test]
    async fn retries_throttling_then_succeeds() {
        let (endpoint, count) = scripted_server(vec![slow_down(), too_many(), ok_put()]);
        let store = scripted_store(&endpoint);
        store.put("k", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn persistent_5xx_is_transient_other() {
        let (endpoint, count) = scripted_server(vec![internal(), internal(), internal()]);
        let store = scripted_store(&endpoint);
        match store.put("k", Bytes::from_static(b"x")).await {
            Err(e @ Error::Other { transient: true, .. }) => assert!(e.to_string().contains("InternalError"), "{e}"),
            other => panic!("expected a transient Other, got {other:?}"),
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3, "3 attempts");
    }

    #[tokio::test]
    async fn forbidden_is_denied_without_retry() {
        let (endpoint, count) = scripted_server(vec![denied(), ok_put()]);
        let store = scripted_store(&endpoint);
        match store.put("k", Bytes::from_static(b"x")).await {
            Err(e @ Error::Denied { .. }) => assert!(e.is_permanent() && e.to_string().contains("SignatureDoesNotMatch")),
            other => panic!("expected Denied, got {other:?}"),
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}

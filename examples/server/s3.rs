//! `--s3-*`: uploads and assembled files in an S3-compatible bucket, so that several servers
//! can share it (feature `s3`).

use chunked_upload::S3Store;
use chunked_upload::object_store::aws::{AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};

/// The bucket flags.
#[derive(Debug, clap::Args)]
pub struct S3Args {
    /// Keep uploads and assembled files in this S3 bucket instead of --dir (credentials from
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Servers sharing the bucket (and the
    /// --signing-key) serve the same uploads.
    #[arg(long, value_name = "NAME")]
    pub s3_bucket: Option<String>,
    /// The endpoint of an S3-compatible server (MinIO, Ceph RGW, R2, s3s). Plain http only on
    /// loopback.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Key prefix: assembled files go directly below it, uploads in progress below its hidden
    /// `.chunked-upload/` folder.
    #[arg(long, value_name = "PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// The bucket's region (default: AWS_REGION, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
    /// How long an upload's lease lasts without renewal, in seconds: the longest a killed
    /// server keeps an upload locked (plus 2 s of clock skew).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub s3_lease_secs: u64,
}

/// The store the flags describe, if `--s3-bucket` is given.
pub fn store(args: &S3Args) -> Result<Option<S3Store>, Box<dyn std::error::Error>> {
    let Some(bucket) = &args.s3_bucket else {
        return Ok(None);
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch);
    if std::env::var_os("AWS_COPY_IF_NOT_EXISTS").is_none() {
        // AWS S3, MinIO and s3s: a copy that does not overwrite is a multipart copy completed
        // with `If-None-Match: *`. (R2: set AWS_COPY_IF_NOT_EXISTS to its header.)
        builder = builder.with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
    }
    if let Some(region) = &args.s3_region {
        builder = builder.with_region(region);
    }
    if let Some(endpoint) = &args.s3_endpoint {
        let loopback = endpoint
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|host| {
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                host == "localhost" || host == "[::1]" || host.starts_with("127.")
            });
        if endpoint.starts_with("http://") && !loopback {
            return Err(format!("--s3-endpoint {endpoint}: plain http only on loopback").into());
        }
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(loopback)
            .with_virtual_hosted_style_request(false);
    }
    let store = S3Store::builder_s3(builder.build()?)
        .prefix(args.s3_prefix.clone())
        .lease_time(std::time::Duration::from_secs(args.s3_lease_secs))
        .build()?;
    tracing::info!(bucket, prefix = %args.s3_prefix, "uploads and assembled files go to the bucket");
    Ok(Some(store))
}

//! The Synod PHP extension: a thin translation layer. PHP values come in,
//! become calls on the `synod-client` core run on one tokio runtime per
//! process, and plain values or exceptions go back out. No PHP value is
//! touched off the PHP thread.
#![cfg_attr(windows, feature(abi_vectorcall))]

mod errors;
mod runtime;

use std::time::Duration;

use ext_php_rs::binary::Binary;
use ext_php_rs::binary_slice::BinarySlice;
use ext_php_rs::exception::PhpException;
use ext_php_rs::prelude::*;
use ext_php_rs::types::Zval;
use ext_php_rs::zend::ce;
use synod_client::pb::{DeleteRangeRequest, PutRequest};

use errors::{
    CompactedException, ConnectionException, LeaseNotFoundException, SynodException,
    TimeoutException,
};

/// A connection to a list of etcd v3 endpoints (Synod or etcd). Connections
/// live for the whole PHP process and are shared by every Client with the
/// same endpoints and timeouts, so php-fpm workers reuse them across requests.
#[php_class]
#[php(name = "Synod\\Client")]
pub struct Client {
    endpoints: Vec<String>,
    opts: synod_client::Options,
}

fn seconds(name: &str, v: Option<f64>, default: Duration) -> PhpResult<Duration> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(PhpException::new(
            format!("{name} must be a number of seconds in (0, 86400], {s} given"),
            0,
            ce::value_error(),
        )),
    }
}

fn endpoint_list(endpoints: &Zval) -> PhpResult<Vec<String>> {
    let list: Vec<String> = if let Some(s) = endpoints.str() {
        s.split(',').map(|e| e.trim().to_string()).collect()
    } else if let Some(arr) = endpoints.array() {
        let mut out = Vec::with_capacity(arr.len());
        for (_, v) in arr.iter() {
            match v.str() {
                Some(s) => out.push(s.trim().to_string()),
                None => {
                    return Err(PhpException::new(
                        "endpoints must be a string or a list of strings".into(),
                        0,
                        ce::type_error(),
                    ))
                }
            }
        }
        out
    } else {
        return Err(PhpException::new(
            "endpoints must be a string or a list of strings".into(),
            0,
            ce::type_error(),
        ));
    };
    if list.is_empty() || list.iter().any(|e| e.is_empty()) {
        return Err(PhpException::new(
            "endpoints must not be empty".into(),
            0,
            ce::value_error(),
        ));
    }
    Ok(list)
}

impl Client {
    fn core(&self) -> PhpResult<synod_client::Client> {
        runtime::client(&self.endpoints, &self.opts)
    }
}

#[php_impl]
impl Client {
    /// Connects lazily: an unreachable server shows on the first call.
    pub fn __construct(
        endpoints: &Zval,
        connect_timeout: Option<f64>,
        request_timeout: Option<f64>,
    ) -> PhpResult<Self> {
        let endpoints = endpoint_list(endpoints)?;
        let defaults = synod_client::Options::default();
        let opts = synod_client::Options {
            connect_timeout: seconds("connect_timeout", connect_timeout, defaults.connect_timeout)?,
            request_timeout: seconds("request_timeout", request_timeout, defaults.request_timeout)?,
        };
        // Validate the endpoint syntax now rather than on first use.
        synod_client::Client::new(&endpoints, opts.clone()).map_err(errors::to_php)?;
        Ok(Client { endpoints, opts })
    }

    /// The value of `key`, or null when it does not exist.
    pub fn get(&self, key: BinarySlice<u8>) -> PhpResult<Option<Binary<u8>>> {
        let c = self.core()?;
        let key = key.to_vec();
        let kv = runtime::block_on(async move { c.get(key).await })?;
        Ok(kv.map(|kv| Binary::from(kv.value)))
    }

    /// Stores `value` under `key` (attached to `lease` when given) and
    /// returns the store revision of the write.
    pub fn put(
        &self,
        key: BinarySlice<u8>,
        value: BinarySlice<u8>,
        lease: Option<i64>,
    ) -> PhpResult<i64> {
        let c = self.core()?;
        let req = PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease: lease.unwrap_or(0),
            ..Default::default()
        };
        let resp = runtime::block_on(async move { c.put(req).await })?;
        Ok(resp.header.map_or(0, |h| h.revision))
    }

    /// Deletes `key` and returns how many keys were deleted (0 or 1).
    pub fn delete(&self, key: BinarySlice<u8>) -> PhpResult<i64> {
        let c = self.core()?;
        let req = DeleteRangeRequest {
            key: key.to_vec(),
            ..Default::default()
        };
        let resp = runtime::block_on(async move { c.delete(req).await })?;
        Ok(resp.deleted)
    }
}

#[php_module]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    // PHP knows the extension as "synod" (extension_loaded, php -m), not by
    // the crate's name.
    module
        .name("synod")
        .class::<SynodException>()
        .class::<ConnectionException>()
        .class::<TimeoutException>()
        .class::<CompactedException>()
        .class::<LeaseNotFoundException>()
        .class::<Client>()
}

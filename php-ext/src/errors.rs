//! `Synod\Exception\*`: one class per failure a caller can act on, all under
//! `SynodException`, which extends PHP's `RuntimeException`.

use ext_php_rs::exception::PhpException;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::{ce, ClassEntry};

extern "C" {
    /// SPL's class entry, exported by the PHP binary. SPL is built in and
    /// registers before any extension starts; the class table lookup is not
    /// available yet while extensions register their classes.
    static spl_ce_RuntimeException: *mut ext_php_rs::ffi::zend_class_entry;
}

fn runtime_exception() -> &'static ClassEntry {
    // SAFETY: read once SPL has set it (module startup of a later
    // extension); a null pointer falls back to \Exception.
    unsafe { spl_ce_RuntimeException.cast::<ClassEntry>().as_ref() }.unwrap_or_else(ce::exception)
}

#[php_class]
#[php(name = "Synod\\Exception\\SynodException")]
#[php(extends(ce = runtime_exception, stub = "\\RuntimeException"))]
#[derive(Default)]
pub struct SynodException;

#[php_class]
#[php(name = "Synod\\Exception\\ConnectionException")]
#[php(extends(SynodException))]
#[derive(Default)]
pub struct ConnectionException;

#[php_class]
#[php(name = "Synod\\Exception\\TimeoutException")]
#[php(extends(SynodException))]
#[derive(Default)]
pub struct TimeoutException;

#[php_class]
#[php(name = "Synod\\Exception\\CompactedException")]
#[php(extends(SynodException))]
#[derive(Default)]
pub struct CompactedException;

#[php_class]
#[php(name = "Synod\\Exception\\LeaseNotFoundException")]
#[php(extends(SynodException))]
#[derive(Default)]
pub struct LeaseNotFoundException;

/// The one place client errors become PHP exceptions.
pub fn to_php(e: synod_client::Error) -> PhpException {
    use synod_client::Error::*;
    let msg = e.to_string();
    match e {
        InvalidArgument(_) => PhpException::new(msg, 0, ce::value_error()),
        Connection(_) => PhpException::from_class::<ConnectionException>(msg),
        Timeout(_) => PhpException::from_class::<TimeoutException>(msg),
        Compacted { .. } => PhpException::from_class::<CompactedException>(msg),
        LeaseNotFound(_) => PhpException::from_class::<LeaseNotFoundException>(msg),
        Server { .. } => PhpException::from_class::<SynodException>(msg),
    }
}

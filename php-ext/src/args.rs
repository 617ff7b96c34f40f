//! Argument types that convert the way PHP's own functions do.

use std::borrow::Cow;
use std::ops::Deref;
use std::time::Duration;

use ext_php_rs::convert::FromZval;
use ext_php_rs::flags::DataType;
use ext_php_rs::prelude::PhpResult;
use ext_php_rs::types::{ZendHashTable, Zval};

use crate::txn::value_error;

/// A binary-safe `string` parameter. Like a PHP `string` parameter outside
/// strict_types, it also takes ints, floats and bools in their string form,
/// so `$c->delete($k)` works for the int keys PHP makes of numeric strings.
pub struct Bytes<'a>(Cow<'a, [u8]>);

impl<'a> FromZval<'a> for Bytes<'a> {
    const TYPE: DataType = DataType::String;

    fn from_zval(zval: &'a Zval) -> Option<Self> {
        if let Some(s) = zval.zend_str() {
            return Some(Bytes(Cow::Borrowed(s.as_bytes())));
        }
        if zval.is_long() || zval.is_double() || zval.is_bool() {
            return zval
                .coerce_to_string()
                .map(|s| Bytes(Cow::Owned(s.into_bytes())));
        }
        None
    }
}

impl Deref for Bytes<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A `?float $timeout` in seconds: null waits without limit, 0 does not
/// wait at all.
pub fn timeout(t: Option<f64>) -> PhpResult<Option<Duration>> {
    match t {
        None => Ok(None),
        Some(t) if t.is_finite() && (0.0..=86_400.0).contains(&t) => {
            Ok(Some(Duration::from_secs_f64(t)))
        }
        Some(t) => Err(value_error(format!(
            "timeout must be a number of seconds in [0, 86400], {t} given"
        ))),
    }
}

/// The entries of a PHP array, keys as Zvals. Not through ext-php-rs's
/// `iter()` or `values()` (nor `has_sequential_keys()`), which panic on a
/// string key that is not UTF-8.
pub fn entries(arr: &ZendHashTable) -> impl Iterator<Item = (Zval, &Zval)> {
    let mut it = arr.iter();
    std::iter::from_fn(move || it.next_zval())
}

//! Argument types that convert the way PHP's own functions do.

use std::borrow::Cow;
use std::ops::Deref;

use ext_php_rs::convert::FromZval;
use ext_php_rs::flags::DataType;
use ext_php_rs::types::Zval;

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

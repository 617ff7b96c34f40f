//! `Synod\Exception\*`: one class per failure a caller can act on, all under
//! `SynodException`, which extends PHP's `RuntimeException`.
//!
//! These are registered the way a C extension registers exceptions, not as
//! `#[php_class]`es: ext-php-rs gives its classes their own object
//! constructor and `__construct`, which skip what `Exception` does when an
//! object is made (file, line, trace) and make `new ConnectionException(...)`
//! throw. Registered plainly, they inherit all of that from `Exception`.

use std::sync::atomic::{AtomicPtr, Ordering};

use ext_php_rs::args::ArgInfoTables;
use ext_php_rs::builders::{ClassBuilder, ClassProperty};
use ext_php_rs::exception::PhpException;
use ext_php_rs::ffi::{ext_php_rs_compiler_globals, zend_hash_str_find_ptr_lc};
use ext_php_rs::flags::{DataType, PropertyFlags};
use ext_php_rs::types::Zval;
use ext_php_rs::zend::{ce, ClassEntry, ExecutorGlobals};
use synod_client::{recipes, Code};

static RUNTIME_EXCEPTION: AtomicPtr<ClassEntry> = AtomicPtr::new(std::ptr::null_mut());

fn runtime_exception() -> &'static ClassEntry {
    // SAFETY: null, or SPL's class entry, which lives as long as the process.
    unsafe { RUNTIME_EXCEPTION.load(Ordering::Acquire).as_ref() }.unwrap_or_else(ce::exception)
}

/// Finds SPL's RuntimeException in the compiler's class table. SPL is built
/// in and registers before any extension starts. (Not through the exported
/// `spl_ce_RuntimeException`: `cargo php stubs` loads the library outside
/// PHP and provides only the symbols ext-php-rs itself uses.)
fn find_runtime_exception() {
    const NAME: &str = "RuntimeException";
    // SAFETY: the compiler globals and their class table are the engine's,
    // valid during module startup.
    let ce = unsafe {
        let Some(cg) = ext_php_rs_compiler_globals().as_ref() else {
            return;
        };
        zend_hash_str_find_ptr_lc(cg.class_table, NAME.as_ptr().cast(), NAME.len())
    };
    RUNTIME_EXCEPTION.store(ce.cast(), Ordering::Release);
}

#[derive(Clone, Copy)]
pub enum Kind {
    Synod,
    Connection,
    Timeout,
    Compacted,
    LeaseNotFound,
    LockLost,
    NotLeader,
    JobLost,
}

const KINDS: [Kind; 8] = [
    Kind::Synod,
    Kind::Connection,
    Kind::Timeout,
    Kind::Compacted,
    Kind::LeaseNotFound,
    Kind::LockLost,
    Kind::NotLeader,
    Kind::JobLost,
];

static ENTRIES: [AtomicPtr<ClassEntry>; 8] = [const { AtomicPtr::new(std::ptr::null_mut()) }; 8];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Synod => "Synod\\Exception\\SynodException",
            Kind::Connection => "Synod\\Exception\\ConnectionException",
            Kind::Timeout => "Synod\\Exception\\TimeoutException",
            Kind::Compacted => "Synod\\Exception\\CompactedException",
            Kind::LeaseNotFound => "Synod\\Exception\\LeaseNotFoundException",
            Kind::LockLost => "Synod\\Exception\\LockLostException",
            Kind::NotLeader => "Synod\\Exception\\NotLeaderException",
            Kind::JobLost => "Synod\\Exception\\JobLostException",
        }
    }

    /// The registered class; before registration (never, once the module
    /// has started) the parent stands in.
    pub fn ce(self) -> &'static ClassEntry {
        // SAFETY: set once at module startup to an engine-owned class entry
        // that lives as long as the process.
        unsafe { ENTRIES[self as usize].load(Ordering::Acquire).as_ref() }
            .unwrap_or_else(runtime_exception)
    }
}

fn synod_ce() -> &'static ClassEntry {
    Kind::Synod.ce()
}

fn remember<const K: usize>(ce: &'static mut ClassEntry, args: ArgInfoTables) {
    ENTRIES[K].store(ce, Ordering::Release);
    // The engine may point into these for the life of the process.
    std::mem::forget(args);
}

const REGISTER: [fn(&'static mut ClassEntry, ArgInfoTables); 8] = [
    remember::<0>,
    remember::<1>,
    remember::<2>,
    remember::<3>,
    remember::<4>,
    remember::<5>,
    remember::<6>,
    remember::<7>,
];

/// Module startup: registers the exception classes.
pub extern "C" fn startup(_type: i32, _module: i32) -> i32 {
    let registered = std::panic::catch_unwind(|| {
        find_runtime_exception();
        for kind in KINDS {
            let parent: (fn() -> &'static ClassEntry, &'static str) = match kind {
                Kind::Synod => (runtime_exception, "RuntimeException"),
                _ => (synod_ce, "Synod\\Exception\\SynodException"),
            };
            let mut b = ClassBuilder::new(kind.name())
                .extends(parent)
                .registration(REGISTER[kind as usize]);
            if let Kind::Compacted = kind {
                b = b.property(ClassProperty {
                    name: "compactRevision".into(),
                    flags: PropertyFlags::Public,
                    default: Some(Box::new(|| {
                        let mut z = Zval::new();
                        z.set_long(0);
                        Ok(z)
                    })),
                    docs: &[],
                    ty: Some(DataType::Long),
                    nullable: false,
                    readonly: false,
                    default_stub: Some("0".into()),
                });
            }
            b.register()?;
        }
        Ok::<_, ext_php_rs::error::Error>(())
    });
    match registered {
        Ok(Ok(())) => 0,
        _ => -1,
    }
}

fn exception(kind: Kind, msg: String, code: Code) -> PhpException {
    PhpException::new(msg, code as i32, kind.ce())
}

/// The one place client errors become PHP exceptions. The exception code
/// is the gRPC status code, so callers can tell apart what shares a class.
pub fn to_php(e: synod_client::Error) -> PhpException {
    use synod_client::Error::*;
    let msg = e.to_string();
    let code = e.code();
    match e {
        InvalidArgument(_) => PhpException::new(msg, 0, ce::value_error()),
        Connection(_) => exception(Kind::Connection, msg, code),
        Timeout(_) => exception(Kind::Timeout, msg, code),
        Compacted { compact_revision } => compacted(msg, code, compact_revision),
        LeaseNotFound(_) => exception(Kind::LeaseNotFound, msg, code),
        // The recipes' own failures, in etcd's words.
        Server { message, .. } if message == recipes::SESSION_EXPIRED => {
            exception(Kind::LockLost, msg, code)
        }
        Server { message, .. } if message == recipes::NOT_LEADER => {
            exception(Kind::NotLeader, msg, code)
        }
        Server { message, .. } if message.starts_with(recipes::JOB_LOST) => {
            exception(Kind::JobLost, msg, code)
        }
        Server { .. } => exception(Kind::Synod, msg, code),
    }
}

/// Throws the CompactedException right away so that its compactRevision
/// can be set on the object; the returned exception is not thrown again,
/// since one is already pending.
fn compacted(msg: String, code: Code, compact_revision: i64) -> PhpException {
    let ex = exception(Kind::Compacted, msg.clone(), code);
    if ExecutorGlobals::has_exception()
        || ext_php_rs::exception::throw_with_code(Kind::Compacted.ce(), code as i32, &msg).is_err()
    {
        return ex;
    }
    let pending = ExecutorGlobals::get().exception;
    // SAFETY: the engine just made and holds this object; nothing else
    // touches it before control returns to PHP.
    if let Some(obj) = unsafe { pending.as_mut() } {
        let _ = obj.set_property("compactRevision", compact_revision);
    }
    ex
}

/// A SynodException with this message (for failures of our own making).
pub fn synod(msg: String) -> PhpException {
    PhpException::new(msg, 0, Kind::Synod.ce())
}

/// A LockLostException with this message.
pub fn lock_lost(msg: String) -> PhpException {
    PhpException::new(msg, Code::FailedPrecondition as i32, Kind::LockLost.ce())
}

/// A TimeoutException with this message.
pub fn timeout(msg: String) -> PhpException {
    PhpException::new(msg, Code::DeadlineExceeded as i32, Kind::Timeout.ce())
}

//! The Synod PHP extension: a thin translation layer. PHP values come in,
//! become calls on the `synod-client` core run on one tokio runtime per
//! process, and plain values or exceptions go back out. No PHP value is
//! touched off the PHP thread.
#![cfg_attr(windows, feature(abi_vectorcall))]

mod args;
mod client;
mod election;
mod errors;
mod lease;
mod lock;
mod mirror;
mod queue;
mod runtime;
mod services;
mod txn;
mod values;
mod watch;

use ext_php_rs::prelude::*;

#[php_module]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    // PHP knows the extension as "synod" (extension_loaded, php -m), not by
    // the crate's name. Nothing here may start threads or do I/O: `cargo php
    // stubs` loads the module just to describe it.
    module
        .name("synod")
        .startup_function(errors::startup)
        .request_shutdown_function(runtime::request_shutdown)
        .shutdown_function(runtime::module_shutdown)
        .class::<values::KeyValue>()
        .class::<values::Event>()
        .class::<values::TxnResult>()
        .class::<txn::Op>()
        .class::<txn::Txn>()
        .class::<lease::Lease>()
        .class::<watch::Watch>()
        .class::<lock::Lock>()
        .class::<election::LeaderChange>()
        .class::<election::LeaderObserver>()
        .class::<election::Election>()
        .class::<mirror::Mirror>()
        .class::<queue::Job>()
        .class::<queue::Queue>()
        .class::<services::ServiceInstance>()
        .class::<services::ServiceEvent>()
        .class::<services::ServiceWatch>()
        .class::<services::Registration>()
        .class::<services::ServiceRegistry>()
        .class::<client::Client>()
}

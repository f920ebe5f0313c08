//! /proc and signals: the server sees its own /proc entry, not the guard's, and cannot signal
//! processes outside its sandbox.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use std::process::{Command, Stdio};

use harness::{assert_blocked, assert_succeeded, Server};
use serde_json::json;

/// The attack from a direct server against the running guard (the control), then from the
/// guarded server against its own guard.
fn against_the_guard(name: &str, extra: serde_json::Value) {
    let mut guarded = Server::guarded();
    let mut args = extra;
    args["pid"] = json!(guarded.pid());
    assert_succeeded(&Server::direct().attack(name, args.clone()));
    assert_blocked(&guarded.attack(name, args));
    guarded.assert_alive();
}

#[test]
fn proc_environ_of_the_guard() {
    against_the_guard("proc_read", json!({"file": "environ"}));
}

#[test]
fn proc_mem_of_the_guard() {
    against_the_guard("proc_open_mem", json!({}));
}

#[test]
fn proc_cmdline_of_the_guard() {
    against_the_guard("proc_read", json!({"file": "cmdline"}));
}

#[test]
fn proc_self_stays_readable() {
    let mut guarded = Server::guarded();
    assert_succeeded(&guarded.attack("read_file", json!({"path": "/proc/self/maps"})));
    assert_succeeded(&guarded.attack("read_file", json!({"path": "/proc/self/status"})));
}

#[test]
fn signal_zero_to_the_guard() {
    against_the_guard("signal", json!({"signal": 0}));
}

#[test]
fn signal_terminate_a_process_outside_the_sandbox() {
    let mut sleeper = Command::new("sleep")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let args = json!({"pid": sleeper.id(), "signal": libc::SIGTERM});
    let mut guarded = Server::guarded();
    assert_blocked(&guarded.attack("signal", args.clone()));
    assert!(
        sleeper.try_wait().expect("wait").is_none(),
        "the process outside was killed"
    );
    guarded.assert_alive();
    assert_succeeded(&Server::direct().attack("signal", args));
    let _ = sleeper.wait();
}

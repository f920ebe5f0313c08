//! Launcher commands the guard looks through, so that it judges and confines the program that
//! really runs rather than the launcher: `env [-i] [-u NAME] [NAME=VALUE…] CMD…`.

pub mod env;

pub use env::{look_through_env, EnvLaunch, LauncherError};

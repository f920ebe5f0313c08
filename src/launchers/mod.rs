//! Launcher commands the guard looks through, so that it judges and confines the program that
//! really runs rather than the launcher: `env [-i] [-u NAME] [NAME=VALUE…] CMD…`, and the
//! package launchers `npx` / `npm exec` (npm.rs) and `uvx` / `uv tool run` (uv.rs), which run
//! from the guard's own package store (package.rs: store, lock, fetch sandbox).

pub mod env;
pub mod error;
pub mod npm;
pub mod package;
pub mod spec;
pub mod uv;

pub use env::{look_through_env, EnvLaunch, LauncherError};
pub use error::{LockedEntry, PackageError};
pub use package::look_through_package;
pub use spec::PackageLaunch;

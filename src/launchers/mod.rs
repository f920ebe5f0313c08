//! Launcher commands the guard looks through, so that it judges and confines the program that
//! really runs rather than the launcher: `env [-i] [-u NAME] [NAME=VALUE…] CMD…`, and the
//! package launchers, which run from the guard's own package store (package.rs: store, fetch
//! sandbox; lock.rs: the lock): the npm family `npx` / `npm exec` (npm.rs), `pnpm dlx` / `bunx`
//! (pnpm_bun.rs), and the PyPI family `uvx` / `uv tool run` (uv.rs), `pipx run` (pipx.rs).

pub mod env;
pub mod error;
pub mod lock;
pub mod npm;
pub mod package;
pub mod pipx;
pub mod pnpm_bun;
pub mod spec;
pub mod uv;

pub use env::{look_through_env, EnvLaunch, LauncherError};
pub use error::PackageError;
pub use package::look_through_package;

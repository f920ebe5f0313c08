//! The npm family's other launchers: `pnpm dlx [--package=PKG] PKG[@VER] ARGS…` (also `pnpm
//! --package=PKG dlx BIN …` and `pnpx`), and `bunx [-p PKG] PKG[@VER] ARGS…` / `bun x …`, as
//! host configs write them.
//!
//! Only the command line is theirs: the package is fetched from the npm registry with the npm
//! machinery (`npm.rs`) into the guard's store and its bin run with node, exactly as for `npx`.
//! Neither pnpm nor bun is run, so their stores and caches (`~/.local/share/pnpm`,
//! `~/.cache/pnpm`, `~/.bun/install/cache`) are never opened, and neither needs to be
//! installed. `bunx --bun` (run the bin with bun instead of node) is refused for that reason.

use std::ffi::OsString;

use super::error::PackageError;
use super::npm::{parse_options, program_name, Dialect};
use super::spec::PackageLaunch;

const PNPM_DLX: Dialect = Dialect {
    quiet: &["-s", "--silent"],
    package: &["--package"],
    strips_separator: false,
    forms: "`{launcher} PACKAGE[@VERSION] ARGS…` or `{launcher} --package=PACKAGE[@VERSION] BIN \
            ARGS…` (options: --package, -s/--silent)",
};

const BUNX: Dialect = Dialect {
    quiet: &["--silent", "--verbose"],
    package: &["-p", "--package"],
    strips_separator: false,
    forms: "`{launcher} PACKAGE[@VERSION] ARGS…` or `{launcher} -p PACKAGE[@VERSION] BIN ARGS…` \
            (options: -p/--package, --silent, --verbose; mcp-guard runs the bin with node, so \
            not --bun)",
};

/// `pnpm dlx …` / `pnpx …` / `bunx …` / `bun x …`, understood; `None` for other commands.
pub fn parse(command: &[OsString]) -> Result<Option<PackageLaunch>, PackageError> {
    let launch = match program_name(command) {
        "pnpm" => return parse_pnpm(&command[1..]),
        "pnpx" => parse_options("pnpx".into(), &command[1..], &PNPM_DLX, None),
        "bunx" => parse_options("bunx".into(), &command[1..], &BUNX, None),
        "bun" if command.get(1).is_some_and(|a| a == "x") => {
            parse_options("bun x".into(), &command[2..], &BUNX, None)
        }
        _ => return Ok(None),
    };
    launch.map(Some)
}

/// `pnpm [OPTIONS] dlx [OPTIONS] …`: pnpm reads options before its subcommand too (`pnpm
/// --package=PKG dlx BIN`), so those before `dlx` are read with the ones after it.
fn parse_pnpm(args: &[OsString]) -> Result<Option<PackageLaunch>, PackageError> {
    let launcher = "pnpm dlx";
    let Some(dlx) = args.iter().position(|a| a == "dlx") else {
        return Ok(None);
    };
    let before = &args[..dlx];
    for (i, arg) in before.iter().enumerate() {
        let previous = i.checked_sub(1).and_then(|p| before[p].to_str());
        if arg.to_str().is_none_or(|a| a.starts_with('-')) || previous == Some("--package") {
            continue;
        }
        return match previous {
            // `pnpm --dir DIR dlx …`: an option with a value, which the guard does not know.
            Some(option) if option.starts_with('-') && !PNPM_DLX.quiet.contains(&option) => {
                Err(PNPM_DLX.unsupported(launcher.into(), option))
            }
            // `pnpm run dlx`, `pnpm exec dlx`: another pnpm command.
            _ => Ok(None),
        };
    }
    let mut rest = before.to_vec();
    rest.extend_from_slice(&args[dlx + 1..]);
    parse_options(launcher.into(), &rest, &PNPM_DLX, None).map(Some)
}

#[cfg(test)]
mod tests {
    use super::super::spec::test_support::{os, parsed, what};
    use super::*;

    #[test]
    fn pnpm_dlx_forms() {
        let l = parsed(
            parse,
            &["pnpm", "dlx", "@m/server-memory@1.2", "--flag", "x"],
        );
        assert_eq!(l.launcher, "pnpm dlx");
        assert_eq!(what(&l), ("@m/server-memory", Some("1.2"), None));
        assert_eq!(l.args, os(&["--flag", "x"]));
        let pre = [
            "/usr/local/bin/pnpm",
            "--package=@s/tools@2",
            "dlx",
            "tool-a",
            "y",
        ];
        let l = parsed(parse, &pre);
        assert_eq!(what(&l), ("@s/tools", Some("2"), Some("tool-a")));
        assert_eq!(l.args, os(&["y"]));
        let l = parsed(parse, &["pnpm", "-s", "dlx", "--package", "tools", "bin-b"]);
        assert_eq!(what(&l), ("tools", None, Some("bin-b")));
        let l = parsed(parse, &["pnpx", "pkg"]);
        assert_eq!(
            (l.launcher.as_str(), what(&l)),
            ("pnpx", ("pkg", None, None))
        );
        // pnpm's other commands are not package launches.
        for other in [
            &["pnpm", "install"][..],
            &["pnpm", "run", "dlx"],
            &["pnpm", "exec", "dlx"],
            &["pnpm", "-s", "start"],
        ] {
            assert_eq!(parse(&os(other)).unwrap(), None, "{other:?}");
        }
    }

    #[test]
    fn bunx_forms() {
        let l = parsed(parse, &["bunx", "@m/server-memory"]);
        assert_eq!(
            (l.launcher.as_str(), what(&l)),
            ("bunx", ("@m/server-memory", None, None))
        );
        let l = parsed(
            parse,
            &["bun", "x", "--silent", "-p", "tools@3", "bin-c", "--", "z"],
        );
        assert_eq!(
            (l.launcher.as_str(), what(&l)),
            ("bun x", ("tools", Some("3"), Some("bin-c")))
        );
        assert_eq!(l.args, os(&["--", "z"]));
        assert_eq!(parse(&os(&["bun", "run", "x.ts"])).unwrap(), None);
        assert_eq!(parse(&os(&["bun", "server.ts"])).unwrap(), None);
    }

    #[test]
    fn unknown_flags_name_the_flag_and_the_forms() {
        for (command, flag, form) in [
            (
                &["pnpm", "dlx", "--allow-build=esbuild", "pkg"][..],
                "--allow-build=esbuild",
                "`pnpm dlx --package=PACKAGE[@VERSION] BIN ARGS…`",
            ),
            (
                &["pnpm", "--dir", "/x", "dlx", "pkg"],
                "--dir",
                "`pnpm dlx PACKAGE[@VERSION] ARGS…`",
            ),
            (
                &["pnpm", "dlx", "-c", "pkg"],
                "-c",
                "(options: --package, -s/--silent)",
            ),
            (
                &["bunx", "--bun", "pkg"],
                "--bun",
                "`bunx -p PACKAGE[@VERSION] BIN ARGS…`",
            ),
            (
                &["bun", "x", "--no-install", "pkg"],
                "--no-install",
                "so not --bun",
            ),
        ] {
            let e = parse(&os(command)).unwrap_err().to_string();
            assert!(e.contains(&format!("{flag}` is not understood")), "{e}");
            assert!(e.contains(form), "{e}");
        }
    }

    #[test]
    fn refusals() {
        for bad in [
            &["pnpm", "dlx"][..],
            &["pnpm", "dlx", "./local"],
            &["pnpm", "dlx", "github:a/b"],
            &["pnpm", "dlx", "--package", "a", "--package", "b", "bin"],
            &["pnpm", "dlx", "--package"],
            &["bunx"],
            &["bunx", "https://x/y.tgz"],
        ] {
            assert!(parse(&os(bad)).is_err(), "{bad:?}");
        }
        let e = parse(&os(&["bunx"])).unwrap_err().to_string();
        assert!(
            e.starts_with("`bunx` with no package to run: write `bunx PACKAGE"),
            "{e}"
        );
    }
}

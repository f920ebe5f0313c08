//! Real clients inside the sandbox reach a listed host through the guard's egress proxy with
//! nothing but the proxy variables the guard sets: curl, Python's urllib, git over https. A
//! client that ignores the variables (Node 20's https module) fails closed. Against a local TLS
//! site on 127.0.0.1, which the policy lists by CIDR; in both tiers, as root and as an ordinary
//! user.
#![cfg(target_os = "linux")]

#[path = "sandbox_harness/mod.rs"]
mod harness;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use harness::support::users::{identities, Identity};
use harness::{assert_blocked, assert_succeeded, Server};
use serde_json::json;

const GREETING: &str = "hello through the proxy";

/// A TLS site on 127.0.0.1 serving a directory: `hello.txt` and a git repository over dumb HTTP.
struct Site {
    dir: tempfile::TempDir,
    port: u16,
    server: Child,
}

impl Site {
    fn start(who: &Identity) -> Option<Site> {
        for tool in ["openssl", "git", "/usr/bin/python3", "/usr/bin/curl"] {
            if Command::new(tool).arg("--version").output().is_err() && !Path::new(tool).exists() {
                eprintln!("SKIPPED: {tool} is not installed");
                return None;
            }
        }
        let dir = who.scratch_dir();
        let d = dir.path();
        run(Command::new("openssl").current_dir(d).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ]));
        std::fs::write(d.join("hello.txt"), GREETING).expect("write hello");
        let work = d.join("work");
        run(Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .arg(&work));
        std::fs::write(work.join("README"), "x").expect("write");
        run(Command::new("git")
            .current_dir(&work)
            .args(["add", "README"]));
        run(Command::new("git").current_dir(&work).args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "one",
        ]));
        run(Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(&work)
            .arg(d.join("repo.git")));
        run(Command::new("git")
            .arg("--git-dir")
            .arg(d.join("repo.git"))
            .arg("update-server-info"));
        let script = "import http.server, ssl, sys, os\n\
            os.chdir(sys.argv[1])\n\
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
            ctx.load_cert_chain('cert.pem', 'key.pem')\n\
            class Quiet(http.server.SimpleHTTPRequestHandler):\n\
            \x20   def log_message(self, *a): pass\n\
            s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Quiet)\n\
            s.socket = ctx.wrap_socket(s.socket, server_side=True)\n\
            print(s.server_address[1], flush=True)\n\
            s.serve_forever()\n";
        let mut server = Command::new("/usr/bin/python3")
            .args(["-c", script])
            .arg(d)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the TLS site");
        let mut line = String::new();
        BufReader::new(server.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the port");
        let port = line.trim().parse().expect("a port");
        Some(Site { dir, port, server })
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn run(command: &mut Command) {
    let out = command.output().expect("run a setup command");
    assert!(out.status.success(), "{command:?} failed: {out:?}");
}

fn guarded(who: &Identity, tier: &str, site: &Site, audit: &Path) -> Server {
    let allow = format!("127.0.0.1/32:{}", site.port);
    let dir = site.dir.path().to_string_lossy().into_owned();
    let audit = audit.to_string_lossy().into_owned();
    Server::guarded_as(
        who,
        &[
            "--network-isolation",
            tier,
            "--allow-host",
            &allow,
            "--allow-read",
            &dir,
            "--allow-exec",
            "/usr/bin/curl",
            "--allow-exec",
            "/usr/bin/python3",
            "--allow-read",
            "/usr/lib/python3.11",
            "--allow-exec",
            "/usr/bin/git",
            "--allow-exec",
            "/usr/lib/git-core",
            "--allow-read",
            "/usr/share/git-core",
            "--allow-exec",
            "/usr/bin/node",
            // git refuses to run when it cannot read the system config the sandbox hides.
            "--env",
            "GIT_CONFIG_NOSYSTEM=1",
            "--audit-log",
            &audit,
        ],
    )
}

#[test]
fn real_clients_reach_a_listed_host_through_the_proxy() {
    for who in identities() {
        let Some(site) = Site::start(&who) else {
            return;
        };
        let cert = site.cert().to_string_lossy().into_owned();
        for tier in ["namespace", "broker"] {
            eprintln!("--- tier {tier}, as {}", who.label());
            let scratch = who.scratch_dir();
            let audit = scratch.path().join("audit.jsonl");
            let mut server = guarded(&who, tier, &site, &audit);

            let curl = server.attack(
                "exec",
                json!({"path": "/usr/bin/curl",
                       "args": ["-sS", "--fail", "--cacert", cert, site.url("hello.txt")]}),
            );
            assert_succeeded(&curl);
            assert!(curl.contains(GREETING), "curl: {curl}");

            let python = format!(
                "import ssl, urllib.request\n\
                 ctx = ssl.create_default_context(cafile='{cert}')\n\
                 print(urllib.request.urlopen('{}', context=ctx).read().decode())",
                site.url("hello.txt")
            );
            let urllib = server.attack(
                "exec",
                json!({"path": "/usr/bin/python3", "args": ["-c", python]}),
            );
            assert_succeeded(&urllib);
            assert!(urllib.contains(GREETING), "urllib: {urllib}");

            let git = server.attack(
                "exec",
                json!({"path": "/usr/bin/git",
                       "args": ["-C", "/", "-c", format!("http.sslCAInfo={cert}"), "ls-remote",
                                site.url("repo.git")]}),
            );
            assert_succeeded(&git);
            assert!(git.contains("refs/heads/main"), "git: {git}");

            // Node 20's https module ignores the proxy variables: it must fail, not leak.
            let node = format!(
                "require('https').get('{}', {{ca: require('fs').readFileSync('{cert}')}}, \
                 r => {{ r.pipe(process.stdout) }}).on('error', e => {{ console.error(e.message); \
                 process.exit(1) }})",
                site.url("hello.txt")
            );
            let node = json!({"path": "/usr/bin/node", "args": ["-e", node]});
            assert_blocked(&server.attack("exec", node.clone()));
            assert_succeeded(&Server::direct_as(&who).attack("exec", node));
            server.assert_alive();
            drop(server);

            let log = std::fs::read_to_string(&audit).unwrap_or_default();
            let allowed = log
                .lines()
                .filter(|l| l.contains("\"event\":\"egress\"") && l.contains("\"allow\""))
                .count();
            assert!(allowed >= 3, "curl, urllib and git each recorded: {log}");
            if tier == "broker" {
                // Going around the proxy is seen (and refused) by the broker.
                assert!(
                    log.lines()
                        .any(|l| l.contains("\"protocol\":\"direct\"") && l.contains("\"deny\"")),
                    "node's direct connection recorded: {log}"
                );
            }
        }
        // The control: the same clients without the guard need no proxy at all.
        let mut direct = Server::direct_as(&who);
        let curl = direct.attack(
            "exec",
            json!({"path": "/usr/bin/curl", "args": ["-sS", "--fail", "--cacert", cert, site.url("hello.txt")]}),
        );
        assert_succeeded(&curl);
    }
}

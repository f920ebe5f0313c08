//! The environment that points the server's HTTP clients at the egress proxy, so node, npm,
//! Python (requests, httpx, urllib), uv, pip, git and curl go through it unchanged.

/// Variables to set in the server's environment for a proxy on 127.0.0.1:`port`. They replace
/// whatever the user's environment had: the proxy is the only way out, and it applies the
/// user's own upstream settings itself.
pub fn proxy_env(port: u16) -> Vec<(String, String)> {
    let http = format!("http://127.0.0.1:{port}");
    // socks5h: the proxy resolves names, so the server never needs DNS.
    let socks = format!("socks5h://127.0.0.1:{port}");
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| vars.push((name.to_owned(), value.to_owned()));
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        set(name, &http);
    }
    // curl and most tools read ALL_PROXY for anything else; one port serves HTTP and SOCKS5.
    for name in ["ALL_PROXY", "all_proxy"] {
        set(name, &socks);
    }
    // Nothing bypasses the proxy: loopback inside the sandbox is not the host's anyway.
    for name in ["NO_PROXY", "no_proxy"] {
        set(name, "");
    }
    // Node's own fetch honours the variables only when asked (Node >= 22.21 / 24).
    set("NODE_USE_ENV_PROXY", "1");
    // npm reads its own config names first; pip and uv read these.
    for name in [
        "npm_config_proxy",
        "npm_config_https_proxy",
        "NPM_CONFIG_PROXY",
        "NPM_CONFIG_HTTPS_PROXY",
        "YARN_HTTP_PROXY",
        "YARN_HTTPS_PROXY",
        "PIP_PROXY",
    ] {
        set(name, &http);
    }
    // npm's `noproxy` defaults to NO_PROXY; pnpm's to its own name.
    set("npm_config_noproxy", "");
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_is_pointed_at_the_port() {
        let vars = proxy_env(4321);
        let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:4321"));
        assert_eq!(get("all_proxy"), Some("socks5h://127.0.0.1:4321"));
        assert_eq!(get("NO_PROXY"), Some(""));
        assert_eq!(get("NODE_USE_ENV_PROXY"), Some("1"));
    }
}

//! The configuration's text: what each location does, and what is refused. nginx itself
//! reads it in tests/edge.rs.

use super::*;

fn settings() -> EdgeSettings {
    EdgeSettings {
        origin: Origin::parse("http://127.0.0.1:8080").unwrap(),
        listen: "127.0.0.1:8081".into(),
        cache_dir: "/var/cache/encore-edge".into(),
        cache_size: "10g".into(),
        auth_ttl: 10,
        edge_token: "aaa.bbb.ccc".into(),
        edge_token_exp: 1_800_000_000,
        trusted_ca: None,
        log_dir: "/var/log/nginx".into(),
    }
}

#[test]
fn origins() {
    let o = Origin::parse("https://origin.example.com").unwrap();
    assert_eq!(
        (o.https, o.host.as_str(), o.port),
        (true, "origin.example.com", 443)
    );
    let o = Origin::parse("http://10.0.0.2:8080/").unwrap();
    assert_eq!(o.authority(), "10.0.0.2:8080");
    let o = Origin::parse("http://[::1]:9000").unwrap();
    assert_eq!(o.authority(), "[::1]:9000");
    assert_eq!(
        Origin::parse("https://[::1]").unwrap().authority(),
        "[::1]:443"
    );
    for bad in [
        "ftp://x",
        "origin:80",
        "http://",
        "http://x/v1",
        "http://x:0",
        "http://x:port",
        "http://u@x",
        "http://x;y",
        "http://x y",
        "http://$host",
    ] {
        assert!(Origin::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_config_checks_then_caches_by_url_and_pulls_with_the_edge_token() {
    let text = nginx_config(&settings(), 1_799_000_000).unwrap();
    assert!(text.contains("server 127.0.0.1:8080;"));
    assert!(text.contains("listen 127.0.0.1:8081;"));
    assert!(text.contains("max_size=10g"));
    assert!(text.contains("proxy_set_header x-encore-edge-ttl 10;"));
    assert!(text.contains("proxy_set_header Authorization \"Bearer aaa.bbb.ccc\";"));
    // Every cached location checks first; segments are keyed by URL alone.
    assert_eq!(text.matches("auth_request /_encore_check;").count(), 3);
    assert_eq!(text.matches("proxy_cache_key $uri;").count(), 2);
    assert!(text.contains("keepalive 64;"));
    assert!(!text.contains("proxy_ssl"), "plain HTTP origin");
    assert!(text.contains("expires at 2027-01-15T08:00:00Z"), "{text}");
}

#[test]
fn an_https_origin_is_verified_with_sni() {
    let mut s = settings();
    s.origin = Origin::parse("https://origin.example.com:8443").unwrap();
    s.trusted_ca = Some("/etc/encore/origin-ca.pem".into());
    let text = nginx_config(&s, 0).unwrap();
    for line in [
        "proxy_ssl_server_name on;",
        "proxy_ssl_name origin.example.com;",
        "proxy_ssl_verify on;",
        "proxy_ssl_trusted_certificate /etc/encore/origin-ca.pem;",
        "proxy_pass https://encore_origin$uri;",
        "proxy_set_header Host origin.example.com:8443;",
    ] {
        assert!(text.contains(line), "{line}");
    }
    s.trusted_ca = None;
    let text = nginx_config(&s, 0).unwrap();
    assert!(text.contains(&format!(
        "proxy_ssl_trusted_certificate {SYSTEM_CA_BUNDLE};"
    )));
}

#[test]
fn settings_that_would_change_the_config_are_refused() {
    let refused = |f: &dyn Fn(&mut EdgeSettings)| {
        let mut s = settings();
        f(&mut s);
        nginx_config(&s, 0).unwrap_err()
    };
    assert!(matches!(
        refused(&|s| s.listen = "80; include /etc/passwd".into()),
        EdgeConfigError::Unsafe { .. }
    ));
    assert!(matches!(
        refused(&|s| s.cache_dir = "cache".into()),
        EdgeConfigError::Relative { .. }
    ));
    assert!(matches!(
        refused(&|s| s.cache_dir = "/var/cache/$x".into()),
        EdgeConfigError::Unsafe { .. }
    ));
    assert_eq!(
        refused(&|s| s.cache_size = "10t".into()),
        EdgeConfigError::CacheSize("10t".into())
    );
    assert_eq!(refused(&|s| s.auth_ttl = 61), EdgeConfigError::AuthTtl(61));
    assert_eq!(
        refused(&|s| s.trusted_ca = Some("/ca.pem".into())),
        EdgeConfigError::CaWithoutTls
    );
    assert!(matches!(
        refused(&|s| s.edge_token = "a\"b".into()),
        EdgeConfigError::Unsafe { .. }
    ));
}

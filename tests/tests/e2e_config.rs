//! Start-up as an operator sees it: zoo.cfg errors name their key and stop the server, the data
//! directory is created, and `paddock status` reports the mode.

use std::process::Command;

use paddock_tests::{free_port, paddock_bin, test_config, ServerProcess};

fn start_with(cfg_text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("paddock-cfg-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("zoo.cfg");
    std::fs::write(&cfg, cfg_text).expect("write");
    let out = Command::new(paddock_bin()).arg("server").arg(&cfg).output().expect("run paddock");
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_invalid_value_stops_start_up_naming_the_key() {
    let (code, err) = start_with("clientPort=2181\ntickTime=soon\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tickTime"), "{err}");
}

#[test]
fn an_unsupported_security_setting_stops_start_up_rather_than_serving_plaintext() {
    let (code, err) = start_with("clientPort=2181\nsecureClientPort=2281\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("secureClientPort"), "{err}");
}

#[test]
fn a_port_in_use_is_an_error_not_a_shared_port() {
    let first = ServerProcess::paddock(1, "");
    let dir = std::env::temp_dir().join(format!("paddock-port-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (code, err) = start_with(&test_config(&dir, first.addr.port(), ""));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot listen"), "{err}");
}

#[test]
fn status_prints_the_mode_and_fails_when_the_server_is_down() {
    let server = ServerProcess::paddock(1, "");
    assert!(server.dir.join("data").is_dir(), "dataDir is created at start-up");
    // A copy outside the server's directory, which goes when the server does.
    let cfg = std::env::temp_dir().join(format!("paddock-status-{}-{}.cfg", std::process::id(), free_port()));
    std::fs::copy(server.dir.join("zoo.cfg"), &cfg).expect("copy zoo.cfg");
    let out = Command::new(paddock_bin()).arg("status").arg(&cfg).output().expect("status");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Mode: standalone"));
    drop(server);
    let out = Command::new(paddock_bin()).arg("status").arg(&cfg).output().expect("status");
    let _ = std::fs::remove_file(&cfg);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_relative_data_dir_works_as_the_embedded_default_uses_one() {
    use bench::client::Client;
    use node::proto::{op, Request};
    // The README's first command runs with dataDir=./data; writes must reach the log there.
    let dir = std::env::temp_dir().join(format!("paddock-reldir-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let cfg = test_config(std::path::Path::new("."), port, "");
    std::fs::write(dir.join("zoo.cfg"), cfg).expect("write");
    let mut child = Command::new(paddock_bin())
        .current_dir(&dir)
        .args(["server", "--cores", "2", "zoo.cfg"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let connected =
        paddock_tests::wait_until(std::time::Duration::from_secs(20), || Client::connect(addr, 4000).is_ok());
    let mut ok = connected;
    if connected {
        let mut c = Client::connect(addr, 4000).expect("connect");
        for i in 0..50 {
            let req = Request::Create {
                path: format!("/r{i}"),
                data: vec![1],
                acl: engine::acl::open_acl_unsafe(),
                flags: 0,
                ttl: -1,
            };
            ok &= c.call(op::CREATE, req).is_ok_and(|r| r.err() == 0);
        }
    }
    let running = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    let logged = dir.join("data/paddock").read_dir().map(|d| d.count()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok && running, "writes with a relative dataDir failed (connected {connected}, still running {running})");
    assert!(logged >= 2, "the log and the secret are under ./data/paddock");
}

//! `paddock status`: asks the server with `srvr` and prints its mode as zkServer.sh does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use node::config::Config;

/// Prints `Mode: ...` and exits 0, or explains and exits 1 when the server does not answer.
pub fn run(cfg: &Config) -> ExitCode {
    let ip = cfg.client_port_address.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
    let ip = if ip.is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { ip };
    let addr = SocketAddr::new(ip, cfg.client_port);
    println!("Client port found: {}. Client address: {}.", cfg.client_port, ip);
    let answer = (|| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"srvr")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })();
    match answer.as_deref().ok().and_then(|t| t.lines().find(|l| l.starts_with("Mode: "))) {
        Some(mode) => {
            println!("{mode}");
            ExitCode::SUCCESS
        }
        None => {
            println!("Error contacting service. It is probably not running.");
            ExitCode::from(1)
        }
    }
}

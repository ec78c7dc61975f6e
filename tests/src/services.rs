//! The services the experiment examples (`examples/*.toml`) expect in the namespace demo
//! setting: a web service in A whose endpoints depend on servers in B. Started by the tests,
//! stopped on drop.
//!
//! ```text
//!   A 10.200.0.1:8080  service   /healthz → TCP connect to the cache     10.200.0.2:6379
//!                                /orders  → TCP connect to the "DynamoDB" 10.200.0.3:8000
//!                                /resolve → DNS query db.chaos.test to    10.200.0.2:53
//!                      each answers 200 "ok" when its dependency answers within 300 ms, else 503
//!   B                  cache and "DynamoDB" TCP listeners; dnsmasq with db.chaos.test
//! ```

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    dns::Dnsmasq,
    netns::{B4, B4_ALT, NsPair, in_ns},
};

/// The service's address and port, in A.
pub const SERVICE: &str = "10.200.0.1:8080";
/// The name the service resolves.
pub const DB_NAME: &str = "db.chaos.test";

const SERVICE_PY: &str = r#"
import http.server, random, socket, struct
CACHE = ("10.200.0.2", 6379); ORDERS = ("10.200.0.3", 8000); RESOLVER = ("10.200.0.2", 53)
def tcp_ok(addr):
    try:
        socket.create_connection(addr, timeout=0.3).close()
        return True
    except OSError:
        return False
def dns_ok(name):
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(q, RESOLVER)
        r = s.recv(512)
        return r[3] & 0xF == 0 and struct.unpack(">H", r[6:8])[0] > 0
    except OSError:
        return False
    finally:
        s.close()
CHECKS = {"/healthz": lambda: tcp_ok(CACHE), "/orders": lambda: tcp_ok(ORDERS), "/resolve": lambda: dns_ok("db.chaos.test")}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        check = CHECKS.get(self.path)
        if check is None:
            self.send_response(404); self.end_headers(); return
        good = check()
        body = b"ok" if good else b"degraded"
        self.send_response(200 if good else 503)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

const LISTEN_PY: &str = r#"
import socket, sys, threading
def serve(host, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(128)
    while True:
        c, _ = s.accept(); c.close()
for a in sys.argv[1:]:
    host, port = a.rsplit(":", 1)
    threading.Thread(target=serve, args=(host, int(port)), daemon=True).start()
threading.Event().wait()
"#;

/// The running services.
pub struct DemoServices {
    children: Vec<Child>,
    _dns: Dnsmasq,
}

fn python(ns: &str, script: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 (cargo xtask setup installs it)")
}

impl DemoServices {
    /// Starts them in `p` and waits until the service's three endpoints answer 200.
    pub fn start(p: &NsPair) -> DemoServices {
        let dns = Dnsmasq::start(&p.b, &[B4], &[(DB_NAME, &["10.200.0.9"])]);
        let cache = format!("{B4}:6379");
        let orders = format!("{B4_ALT}:8000");
        let s = DemoServices {
            children: vec![
                python(&p.b, LISTEN_PY, &[&cache, &orders]),
                python(&p.a, SERVICE_PY, &[]),
            ],
            _dns: dns,
        };
        let start = Instant::now();
        for path in ["/healthz", "/orders", "/resolve"] {
            while get(&p.a, path) != Some(200) {
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "the demo service does not answer 200 on {path}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        s
    }
}

/// The status of `GET path` on the service, from namespace `ns`.
pub fn get(ns: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    in_ns(ns, || {
        let mut c = std::net::TcpStream::connect_timeout(
            &SERVICE.parse().expect("an address"),
            Duration::from_secs(1),
        )
        .ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(c, "GET {path} HTTP/1.0\r\nHost: service\r\n\r\n").ok()?;
        let mut answer = String::new();
        c.read_to_string(&mut answer).ok()?;
        answer.split(' ').nth(1)?.parse().ok()
    })
}

impl Drop for DemoServices {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! DNS messages for the DNS fault tests and benchmarks, built and parsed with hickory-proto.

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query},
    rr::{Name, RecordType, rdata::opt::EdnsOption},
};

/// EDNS option code COOKIE (RFC 7873).
pub const OPTION_COOKIE: u16 = 10;

/// A recursive query for `name` of type `rtype` with id `id`; with `edns`, an OPT record
/// advertising 1232 bytes and carrying an 8-byte client cookie, as dig sends.
pub fn query(name: &str, rtype: RecordType, id: u16, edns: bool) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).expect("a valid test name"),
        rtype,
    ));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        e.options_mut()
            .insert(EdnsOption::Unknown(OPTION_COOKIE, vec![0x5a; 8]));
        m.set_edns(e);
    }
    m.to_vec().expect("an encodable query")
}

/// Parses a DNS message.
pub fn parse(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("a DNS message hickory-proto can parse")
}

/// A dnsmasq serving fixed records in a namespace, logging every query it gets; killed on drop.
pub struct Dnsmasq {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Dnsmasq {
    /// Starts dnsmasq in `ns` on port 53 of `listen` with `records` (name, addresses…) and
    /// waits until it answers the first of them.
    pub fn start(ns: &str, listen: &[&str], records: &[(&str, &[&str])]) -> Dnsmasq {
        let log = std::env::temp_dir().join(format!("chaos-dnsmasq-{ns}.log"));
        let _ = std::fs::remove_file(&log);
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", ns, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .args(["--user=root", "--pid-file=", "--port=53", "--log-queries"])
            .arg(format!("--log-facility={}", log.display()));
        for l in listen {
            cmd.arg(format!("--listen-address={l}"));
        }
        for (name, addrs) in records {
            cmd.arg(format!("--host-record={name},{}", addrs.join(",")));
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dnsmasq (cargo xtask setup installs dnsmasq-base)");
        let d = Dnsmasq { child, log };
        let start = std::time::Instant::now();
        while dig(ns, listen[0], records[0].0, "A").status.as_deref() != Some("NOERROR") {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "dnsmasq in {ns} did not answer within 10 s; log:\n{}",
                d.log_text()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        d
    }

    /// The query log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many queries for `name` (any type) reached the server.
    pub fn queries_for(&self, name: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("query[") && l.contains(&format!(" {name} from")))
            .count()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// What `dig` saw.
#[derive(Debug)]
pub struct Dig {
    /// The response code (`NOERROR`, `NXDOMAIN`…), `None` when no answer came.
    pub status: Option<String>,
    /// Addresses in the answer section.
    pub answers: Vec<String>,
    /// dig's own "Query time", ms.
    pub query_ms: Option<u32>,
    /// dig's output.
    pub output: String,
}

/// Asks `server` (UDP port 53) from namespace `ns` for `name` of type `rtype`, once, waiting
/// at most one second.
pub fn dig(ns: &str, server: &str, name: &str, rtype: &str) -> Dig {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "dig",
            &format!("@{server}"),
            name,
            rtype,
        ])
        .args(["+time=1", "+tries=1"])
        .output()
        .expect("dig (cargo xtask setup installs bind9-dnsutils)");
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |key: &str| {
        output
            .lines()
            .find_map(|l| l.split_once(key).map(|(_, v)| v.to_string()))
    };
    let status = field("status: ").map(|v| v.split(',').next().unwrap_or("").to_string());
    let query_ms = field("Query time: ").and_then(|v| v.split(' ').next()?.parse().ok());
    let mut in_answers = false;
    let mut answers = Vec::new();
    for line in output.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            in_answers = true;
        } else if line.is_empty() {
            in_answers = false;
        } else if in_answers && let Some(addr) = line.split_whitespace().last() {
            answers.push(addr.to_string());
        }
    }
    Dig {
        status,
        answers,
        query_ms,
        output,
    }
}

/// `/etc/netns/NS/resolv.conf`, which `ip netns exec NS` mounts over `/etc/resolv.conf`: glibc
/// in that namespace asks `server`. Removed on drop.
pub struct ResolvConf {
    dir: std::path::PathBuf,
}

impl ResolvConf {
    /// Points glibc in `ns` at `server`, one try with a one-second timeout.
    pub fn new(ns: &str, server: &str) -> ResolvConf {
        let dir = std::path::PathBuf::from(format!("/etc/netns/{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {server}\noptions timeout:1 attempts:1\n"),
        )
        .unwrap();
        ResolvConf { dir }
    }
}

impl Drop for ResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What glibc's `getaddrinfo` says about `name` in `ns` (through python3): `Ok(addresses)` or
/// `Err(EAI code)`, e.g. -2 (EAI_NONAME, "no such name") or -3 (EAI_AGAIN, "try again").
pub fn getaddrinfo(ns: &str, name: &str) -> Result<Vec<String>, i32> {
    let script = "import socket, sys\n\
        try:\n    print(' '.join(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 53)})))\n\
        except socket.gaierror as e:\n    print('error', e.errno)\n";
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script, name])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match text.strip_prefix("error ") {
        Some(code) => Err(code.parse().unwrap_or(0)),
        None => Ok(text.split_whitespace().map(str::to_string).collect()),
    }
}

/// What hickory's resolver (a Rust client with its own cache, asked over UDP) says about `name`
/// in `ns` when it asks only `server`: the addresses, or the error's debug form.
pub fn hickory_lookup(
    ns: &str,
    server: std::net::IpAddr,
    name: &str,
) -> Result<Vec<std::net::IpAddr>, String> {
    use hickory_resolver::{
        Resolver,
        config::{NameServerConfig, ResolverConfig},
        net::runtime::TokioRuntimeProvider,
    };
    crate::netns::in_ns(ns, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let config = ResolverConfig::from_name_servers(vec![NameServerConfig::udp(server)]);
            let mut builder =
                Resolver::builder_with_config(config, TokioRuntimeProvider::default());
            builder.options_mut().timeout = std::time::Duration::from_secs(1);
            builder.options_mut().attempts = 1;
            let resolver = builder.build().map_err(|e| format!("{e:?}"))?;
            resolver
                .lookup_ip(format!("{name}."))
                .await
                .map(|l| l.iter().collect())
                .map_err(|e| format!("{e:?}"))
        })
    })
}

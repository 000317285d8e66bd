//! A Cassandra node of the test's own, for tests that stop the store.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, unique_name};

const HEAP: &str = "512M";
const START_TIMEOUT: Duration = Duration::from_secs(180);
const STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// JVM flags and system properties that do not depend on the node's paths,
/// as `scripts/services.sh` (`cass_launch`) passes them; keep the two alike.
const JVM_FLAGS: &[&str] = &[
    "-Xss256k",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=300",
    "-XX:+ParallelRefProcEnabled",
    "-XX:+PerfDisableSharedMem",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.net.preferIPv4Stack=true",
    "-Djdk.attach.allowAttachSelf=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "--add-exports",
    "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports",
    "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports",
    "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports",
    "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports",
    "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports",
    "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports",
    "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens",
    "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens",
    "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.io=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.util=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.nio=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.nio.charset=ALL-UNNAMED",
    "--add-opens",
    "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens",
    "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "-Dcassandra-foreground=yes",
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.unsafesystem=true",
    "-Dcassandra.superuser_setup_delay_ms=0",
];

/// A second Cassandra JVM, run from the jars `scripts/services.sh` downloaded
/// into `.local/cassandra/lib`, on free ports and with a data directory of its
/// own, so a test can stop and start it without disturbing the shared node.
/// Killed on drop. It also gets SIGKILL when the thread that started it exits
/// (so an aborted test run leaves no JVM behind): call `launch` and `start`
/// from the test's own thread, not from a blocking-pool task.
pub struct PrivateCassandra {
    pub native_port: u16,
    pub storage_port: u16,
    dir: PathBuf,
    lib: PathBuf,
    child: Option<Child>,
}

impl PrivateCassandra {
    /// Configures a node from the shared node's configuration (as
    /// `scripts/services.sh` last wrote it), starts it and waits until it
    /// answers CQL. Blocks for up to a few minutes.
    pub fn launch() -> Self {
        Self::launch_with("")
    }

    /// [`launch`](Self::launch) with `settings` (YAML, keys the shared
    /// configuration does not set) added to `cassandra.yaml`.
    pub fn launch_with(settings: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root");
        let shared = root.join(".local/cassandra");
        let native_port = free_port();
        let storage_port = free_port();
        let dir = std::env::temp_dir().join(unique_name("foodfast_cassandra"));
        for sub in
            ["conf/triggers", "logs", "data/data", "data/commitlog", "data/saved_caches", "data/hints", "data/cdc_raw"]
        {
            std::fs::create_dir_all(dir.join(sub)).expect("private cassandra directories");
        }

        let template = |name: &str| {
            std::fs::read_to_string(shared.join("conf").join(name)).unwrap_or_else(|err| {
                panic!("{name} of the shared node: {err}; run `scripts/services.sh start cassandra` once")
            })
        };
        let (shared_data, own_data) = (shared.join("data"), dir.join("data"));
        let mut yaml = String::new();
        let mut rewritten = 0;
        for line in template("cassandra.yaml").lines() {
            let line = match line.split_once(':').map(|(key, _)| key) {
                Some("cluster_name") => format!("cluster_name: FoodFast Private {native_port}"),
                Some("storage_port") => format!("storage_port: {storage_port}"),
                Some("native_transport_port") => format!("native_transport_port: {native_port}"),
                _ => {
                    yaml.push_str(&line.replace(path_str(&shared_data), path_str(&own_data)));
                    yaml.push('\n');
                    continue;
                }
            };
            rewritten += 1;
            yaml.push_str(&line);
            yaml.push('\n');
        }
        assert_eq!(rewritten, 3, "cassandra.yaml of the shared node lacks a port or cluster_name line");
        assert!(yaml.contains(path_str(&own_data)), "cassandra.yaml of the shared node names no data directory");
        yaml.push_str(settings);
        std::fs::write(dir.join("conf/cassandra.yaml"), yaml).expect("write cassandra.yaml");
        let logback = template("logback.xml").replace(path_str(&shared.join("logs")), path_str(&dir.join("logs")));
        std::fs::write(dir.join("conf/logback.xml"), logback).expect("write logback.xml");

        let mut node = Self { native_port, storage_port, dir, lib: shared.join("lib"), child: None };
        node.start();
        node
    }

    /// `127.0.0.1:PORT` of its CQL port.
    pub fn contact_point(&self) -> String {
        format!("127.0.0.1:{}", self.native_port)
    }

    /// Starts the node (again) on the same ports and data, and waits until it
    /// answers CQL.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "the private Cassandra node is already running");
        let jamm = std::fs::read_dir(&self.lib)
            .expect("run `scripts/services.sh start cassandra` once to download Cassandra")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .find(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("jamm-")))
            .expect("no jamm jar among the Cassandra jars");
        let (conf, logs, data) = (self.dir.join("conf"), self.dir.join("logs"), self.dir.join("data"));
        let stdout = File::options().create(true).append(true).open(logs.join("stdout.log")).expect("stdout.log");

        // As services.sh: a tiny memlock limit without CAP_IPC_LOCK makes
        // Cassandra's mlockall fail harmlessly instead of pinning the heap.
        let mut command = Command::new("sh");
        command.args(["-c", "ulimit -l 64 && exec \"$@\"", "sh", "setpriv", "--pdeathsig", "KILL"]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            command.args(["--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock"]);
        }
        command
            .arg("--")
            .arg(java())
            .args([format!("-Xms{HEAP}"), format!("-Xmx{HEAP}")])
            .arg(format!("-XX:ErrorFile={}/hs_err_%p.log", logs.display()))
            .arg(format!("-javaagent:{}", jamm.display()))
            .args(JVM_FLAGS)
            .arg(format!("-Dcassandra.config=file://{}/cassandra.yaml", conf.display()))
            .arg(format!("-Dcassandra.storagedir={}", data.display()))
            .arg(format!("-Dcassandra.logdir={}", logs.display()))
            .arg(format!("-Dlogback.configurationFile={}/logback.xml", conf.display()))
            .arg(format!("-Dcassandra.triggers_dir={}/triggers", conf.display()))
            .arg("-cp")
            .arg(format!("{}:{}/*", conf.display(), self.lib.display()))
            .arg("org.apache.cassandra.service.CassandraDaemon")
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().expect("stdout.log"))
            .stderr(stdout);
        self.child = Some(command.spawn().expect("start java for the private Cassandra node"));

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("just started");
            if let Some(status) = child.try_wait().expect("wait for cassandra") {
                self.child = None;
                panic!("the private Cassandra node exited during start-up ({status}):\n{}", self.log_tail());
            }
            if cql_answers(self.native_port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the private Cassandra node does not answer CQL after {START_TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the node as an operator would: SIGTERM (Cassandra drains, so
    /// every acknowledged write survives), then waits until it has exited.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: the pid is our own unreaped child, so it names that process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait().expect("wait for cassandra").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.wait();
    }

    fn log_tail(&self) -> String {
        ["logs/system.log", "logs/stdout.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!("== {name}\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for PrivateCassandra {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Java 17, found as `scripts/services.sh` does: `FOODFAST_JAVA`, else the
/// distribution's Java 17, else `java` on the PATH.
fn java() -> PathBuf {
    if let Some(java) = std::env::var_os("FOODFAST_JAVA") {
        return java.into();
    }
    std::fs::read_dir("/usr/lib/jvm")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.starts_with("java-17-")))
        .map(|entry| entry.path().join("bin/java"))
        .find(|java| java.is_file())
        .unwrap_or_else(|| "java".into())
}

/// Speaks just enough CQL v4 (STARTUP, then a QUERY of `system.local`) to
/// tell a node that serves requests from one that merely listens.
fn cql_answers(port: u16) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"\x04\x00\x00\x01\x01\x00\x00\x00\x16\x00\x01\x00\x0bCQL_VERSION\x00\x053.0.0")?;
        match read_frame(&mut stream)? {
            0x02 => {}               // READY
            0x03 => return Ok(true), // AUTHENTICATE: up, and its queries need credentials
            _ => return Ok(false),
        }
        let query = b"SELECT release_version FROM system.local";
        let mut body = (query.len() as u32).to_be_bytes().to_vec();
        body.extend_from_slice(query);
        body.extend_from_slice(&[0x00, 0x01, 0x00]); // consistency ONE, no flags
        let mut frame = vec![0x04, 0x00, 0x00, 0x02, 0x07];
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        stream.write_all(&frame)?;
        Ok(read_frame(&mut stream)? == 0x08) // RESULT, not ERROR
    };
    probe().unwrap_or(false)
}

/// Reads one frame and returns its opcode.
fn read_frame(stream: &mut TcpStream) -> std::io::Result<u8> {
    let mut header = [0; 9];
    stream.read_exact(&mut header)?;
    let length = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
    std::io::copy(&mut stream.take(u64::from(length)), &mut std::io::sink())?;
    Ok(header[4])
}

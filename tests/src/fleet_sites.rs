//! A fleet of real `netboot node` processes on loopback: a publisher key, sites with their
//! configs, ports and endpoint ids (`tests/fleet.rs`, `tests/status.rs`).

use std::{path::PathBuf, process::Command};

use crate::{free_port, keygen, netboot, run, stdout, FleetStatus, NodeProcess};

/// A fleet's test directory and its publisher key.
pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub key: PathBuf,
    pub public: String,
}

/// One node of the fleet: its config, ports and endpoint id.
pub struct Site {
    pub name: String,
    pub config: PathBuf,
    pub http: u16,
    pub fleet: u16,
    pub id: String,
}

impl Site {
    pub fn addr(&self) -> String {
        format!("{}@127.0.0.1:{}", self.id, self.fleet)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    pub fn status(&self) -> FleetStatus {
        let out = Command::new("curl")
            .args(["-sf", &self.url("/fleet/status.json")])
            .output()
            .expect("curl is needed: apt-get install curl");
        FleetStatus::parse(&out.stdout)
    }

    pub fn has_release(&self, name: &str, version: u64) -> bool {
        self.status().has_release(name, version)
    }

    pub fn received_from(&self, id: &str) -> u64 {
        self.status().received_from(id)
    }

    pub fn get(&self, path: &str) -> Vec<u8> {
        let out = Command::new("curl")
            .args(["-sf", &self.url(path)])
            .output()
            .expect("curl");
        assert!(out.status.success(), "GET {path} from {} failed", self.name);
        out.stdout
    }
}

impl Default for Fleet {
    /// A fresh temp dir with a publisher key.
    fn default() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let (key, public) = keygen(tmp.path(), "publisher.key");
        Self { tmp, key, public }
    }
}

impl Fleet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn site(&self, name: &str) -> Site {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let out = run(
            netboot()
                .args(["node-id", "--data-dir"])
                .arg(dir.join("data")),
            true,
        );
        Site {
            name: name.into(),
            config: dir.join("node.toml"),
            http: free_port(),
            fleet: free_port(),
            id: stdout(&out).trim().to_string(),
        }
    }

    /// Writes a site's config: its fleet peers (dialled), further members, extra `[fleet]`
    /// lines.
    pub fn configure(&self, site: &Site, peers: &[String], members: &[&str], fleet_extra: &str) {
        let quote = |v: &[String]| {
            v.iter()
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        std::fs::write(
            &site.config,
            format!(
                "data_dir = \"data\"\ntrusted_publishers = [\"{}\"]\n[dhcp]\nmode = \"off\"\nserver_ip = \"127.0.0.1\"\n\
                 [tftp]\nenabled = false\n[http]\nlisten = \"127.0.0.1:{}\"\n\
                 [fleet]\nlisten = \"127.0.0.1:{}\"\npeers = [{}]\nmembers = [{}]\nstall_timeout_secs = 2\n{fleet_extra}\n",
                self.public,
                site.http,
                site.fleet,
                quote(peers),
                quote(&members),
            ),
        )
        .unwrap();
    }

    /// Two running sites that peer with each other; `a_extra`/`b_extra` go into `[fleet]`.
    pub fn pair(&self, a_extra: &str, b_extra: &str) -> (Site, Site, NodeProcess, NodeProcess) {
        let (a, b) = (self.site("a"), self.site("b"));
        self.configure(&a, &[b.addr()], &[], a_extra);
        self.configure(&b, &[a.addr()], &[], b_extra);
        let na = NodeProcess::start(&a.config, None);
        let nb = NodeProcess::start(&b.config, None);
        (a, b, na, nb)
    }

    pub fn file(&self, name: &str, data: &[u8]) -> String {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, data).unwrap();
        path.display().to_string()
    }

    /// `netboot publish --to <site> --name NAME --version V ARGS…`, which must succeed.
    pub fn publish_to(&self, site: &Site, name: &str, version: u64, args: &[&str]) -> String {
        let addr = site.addr();
        let version = version.to_string();
        let mut all = vec!["--to", &addr, "--name", name, "--version", &version];
        all.extend_from_slice(args);
        stdout(&run(&mut self.publish_cmd(&all), true))
    }

    pub fn publish_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = netboot();
        cmd.arg("publish").arg("--key").arg(&self.key).args(args);
        cmd
    }
}

//! The deployment files under `deploy/`, checked offline: the Kubernetes example
//! (`deploy/kubernetes/*.yaml`) and the container image (`deploy/container/Containerfile`).
//!
//! - every manifest is a valid object of Kubernetes 1.27 and 1.37 in strict mode (an unknown
//!   field is an error), by `kubernetes-validate`, which carries the schemas;
//! - the gateway configuration in the ConfigMap, with the command line the pods start the
//!   gateway with, is accepted by the real gateway binary, which then stops only at the TLS
//!   files that the Secrets provide in a pod;
//! - the probes, ports, peer addresses, Services, volumes and influxd's own configuration (read
//!   by the real `influxd config`) agree with the gateway's routes and configuration;
//! - the Containerfile parses (`dockerfile-parse`), copies only what exists, builds the
//!   crate's binary and installs every shared library that binary links.
//! - the README's openssl commands make the certificates the peers and the API need, the
//!   Secrets it creates hold the files the pods read, and a gateway started with those
//!   certificates serves HTTPS that a client trusting the API's CA accepts.
//!
//! Not checked here: that the image builds (no container registry is reachable) and that the
//! pods run on a real cluster. The Python checkers are installed by `scripts/clients` into
//! `tests/clients/.venv`, which this test runs (a no-op when they are installed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use tests::cluster::gateway_binary;

/// The Kubernetes versions the manifests are validated against: the oldest and the newest
/// the validator carries schemas for, from the range this example is meant for.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.27.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_owned()
}

fn venv_bin(name: &str) -> PathBuf {
    installed();
    repo().join("tests/clients/.venv/bin").join(name)
}

/// Installs the pinned Python checkers once per test process (a no-op when they are).
fn installed() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let script = repo().join("scripts/clients");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            text(&out)
        );
    });
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Runs a Python snippet of the checkers' venv that prints JSON, and returns that JSON.
fn python_json(code: &str, args: &[&Path]) -> Value {
    let out = run(Command::new(venv_bin("python"))
        .arg("-c")
        .arg(code)
        .args(args));
    assert!(out.status.success(), "python failed: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let code = "import json, sys, yaml\n\
                docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
                print(json.dumps(docs))";
    match python_json(code, &[path]) {
        Value::Array(docs) => docs,
        other => panic!("{}: {other}", path.display()),
    }
}

fn toml_file(path: &Path) -> Value {
    let code =
        "import json, sys, tomllib\nprint(json.dumps(tomllib.load(open(sys.argv[1], 'rb'))))";
    python_json(code, &[path])
}

fn manifest_files() -> Vec<PathBuf> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// The example's objects, by kind and name.
struct Manifests {
    objects: BTreeMap<(String, String), Value>,
}

impl Manifests {
    fn load() -> Manifests {
        let mut objects = BTreeMap::new();
        for file in manifest_files() {
            for doc in yaml_documents(&file) {
                let key = (
                    s(&doc["kind"]).to_owned(),
                    s(&doc["metadata"]["name"]).to_owned(),
                );
                assert!(objects.insert(key.clone(), doc).is_none(), "{key:?} twice");
            }
        }
        Manifests { objects }
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .get(&(kind.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
    }

    fn statefulset(&self) -> &Value {
        self.get("StatefulSet", "influx-gateway")
    }

    fn configmap_entry(&self, key: &str) -> String {
        s(&self.get("ConfigMap", "influx-gateway")["data"][key]).to_owned()
    }

    fn container(&self, name: &str) -> &Value {
        containers(self.statefulset())
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no container {name} in the StatefulSet"))
    }

    fn pod_spec(&self) -> &Value {
        &self.statefulset()["spec"]["template"]["spec"]
    }

    /// The volume mounted at `path` in `container`, and the file `path` is in it.
    fn mount_of<'a>(&'a self, container: &'a Value, path: &'a str) -> (&'a Value, &'a str) {
        array(&container["volumeMounts"])
            .filter_map(|m| {
                let rest = path.strip_prefix(s(&m["mountPath"]))?.strip_prefix('/')?;
                Some((m, rest))
            })
            .max_by_key(|(m, _)| s(&m["mountPath"]).len())
            .unwrap_or_else(|| panic!("{path} is on no volume of {}", container["name"]))
    }

    fn volume(&self, name: &str) -> &Value {
        array(&self.pod_spec()["volumes"])
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume {name} in the pod"))
    }

    /// The ConfigMap key a file under a ConfigMap volume's mount is, as the pod sees it.
    fn configmap_file(&self, container: &Value, path: &str) -> String {
        let (mount, file) = self.mount_of(container, path);
        let volume = self.volume(s(&mount["name"]));
        assert_eq!(
            volume["configMap"]["name"], "influx-gateway",
            "{path} is not from the ConfigMap"
        );
        let item = array(&volume["configMap"]["items"])
            .find(|i| i["path"] == file)
            .unwrap_or_else(|| panic!("{path}: the volume {} has no {file}", mount["name"]));
        s(&item["key"]).to_owned()
    }

    fn env(&self, container: &Value, name: &str) -> String {
        let var = array(&container["env"])
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{} has no {name} in its environment", container["name"]));
        s(&var["value"]).to_owned()
    }

    fn pod_labels(&self) -> &Value {
        &self.statefulset()["spec"]["template"]["metadata"]["labels"]
    }
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v}"))
}

fn array(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, found {v}"))
        .iter()
}

fn containers(sts: &Value) -> impl Iterator<Item = &Value> {
    array(&sts["spec"]["template"]["spec"]["containers"])
}

/// Every `key: value` of `selector` is among `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().expect("a selector");
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr} is not HOST:PORT"))
}

/// The port a probe or Service names, as a number of `container`.
fn container_port(container: &Value, port: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return n as u16;
    }
    let p = array(&container["ports"])
        .find(|p| p["name"] == *port)
        .unwrap_or_else(|| panic!("{} has no port named {port}", container["name"]));
    p["containerPort"].as_u64().expect("a port number") as u16
}

fn kubernetes_validate(file: &Path, version: &str) -> Output {
    run(Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", version])
        .arg(file))
}

#[test]
fn every_manifest_is_a_valid_kubernetes_object_in_strict_mode() {
    let files = manifest_files();
    let mut kinds = BTreeSet::new();
    for file in &files {
        let docs = yaml_documents(file);
        assert!(!docs.is_empty(), "{} holds nothing", file.display());
        kinds.extend(docs.iter().map(|d| s(&d["kind"]).to_owned()));
        for version in KUBERNETES_VERSIONS {
            let out = kubernetes_validate(file, version);
            let report = text(&out);
            assert!(
                out.status.success(),
                "{} against {version}:\n{report}",
                file.display()
            );
            // An object whose kind has no schema is only a warning to the validator.
            assert_eq!(
                report.matches(" passed for resource ").count(),
                docs.len(),
                "{} against {version}: not every object was validated:\n{report}",
                file.display()
            );
            assert!(!report.contains("WARN"), "{report}");
        }
    }
    let expected = ["ConfigMap", "PodDisruptionBudget", "Service", "StatefulSet"];
    assert_eq!(
        kinds,
        expected.map(String::from).into(),
        "the example's kinds"
    );

    // Strict mode refuses what a typo makes of a field, offline: the check can fail.
    let sts = repo().join("deploy/kubernetes/statefulset.yaml");
    let good = std::fs::read_to_string(&sts).unwrap();
    let bad = good.replacen("readinessProbe:", "readinesProbe:", 1);
    assert_ne!(good, bad);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("statefulset.yaml");
    std::fs::write(&copy, bad).unwrap();
    let out = kubernetes_validate(&copy, KUBERNETES_VERSIONS[1]);
    assert!(
        !out.status.success(),
        "a misspelt field passed: {}",
        text(&out)
    );
    assert!(text(&out).contains("readinesProbe"), "{}", text(&out));
}

/// How the gateway container's command is run here: by `sh` as in the pod, with its
/// environment, and `gateway` found in `path`.
struct Start<'a> {
    script: &'a Path,
    config: &'a Path,
    initial_members: String,
}

impl Start<'_> {
    fn run(&self, pod: &str, path: &Path) -> Output {
        self.run_with(pod, self.config, &self.initial_members, path)
    }

    fn run_with(&self, pod: &str, config: &Path, initial: &str, path: &Path) -> Output {
        run(Command::new("/bin/sh")
            .arg(self.script)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", path.display()))
            .env("POD_NAME", pod)
            .env("GATEWAY_CONFIG", config)
            .env("INITIAL_MEMBERS", initial))
    }
}

#[test]
fn the_gateway_accepts_the_configmap_configuration_and_the_pod_command() {
    let m = Manifests::load();
    let gateway = m.container("gateway");
    let replicas = m.statefulset()["spec"]["replicas"].as_u64().unwrap();
    let sts_name = s(&m.statefulset()["metadata"]["name"]);

    // The command is the start script of the ConfigMap, and GATEWAY_CONFIG its gateway.toml.
    let command: Vec<&str> = array(&gateway["command"]).map(s).collect();
    assert_eq!(command.len(), 2, "{command:?}");
    assert_eq!(command[0], "/bin/sh");
    assert_eq!(m.configmap_file(gateway, command[1]), "start-gateway.sh");
    let config_path = m.env(gateway, "GATEWAY_CONFIG");
    assert_eq!(m.configmap_file(gateway, &config_path), "gateway.toml");
    let pod_name = array(&gateway["env"])
        .find(|e| e["name"] == "POD_NAME")
        .unwrap();
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, m.configmap_entry("gateway.toml")).unwrap();
    let script = dir.path().join("start-gateway.sh");
    std::fs::write(&script, m.configmap_entry("start-gateway.sh")).unwrap();
    let settings = toml_file(&config);
    let peers = settings["peers"]
        .as_object()
        .expect("a [peers] table")
        .len() as u64;
    assert_eq!(peers, replicas, "[peers] lists every initial pod");
    let start = Start {
        script: &script,
        config: &config,
        initial_members: m.env(gateway, "INITIAL_MEMBERS"),
    };
    assert_eq!(start.initial_members, peers.to_string());
    let service = s(&m.statefulset()["spec"]["serviceName"]);
    let peer_port = port_of(s(&settings["peer_listen"]));

    // What the script passes, by a stand-in `gateway` that prints its arguments.
    let fake = dir.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("gateway"), "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    run(Command::new("chmod").arg("+x").arg(fake.join("gateway")));
    let real = gateway_binary().parent().unwrap().to_owned();
    assert_eq!(gateway_binary().file_name().unwrap(), "gateway");

    // The TLS files come from the Secrets in a pod; on this machine they must be missing, or
    // the gateway below would start for real.
    let https_cert = s(&settings["https_certificate"]);
    for file in [
        https_cert,
        s(&settings["https_private_key"]),
        s(&settings["peer_ca"]),
    ] {
        assert!(!Path::new(file).exists(), "{file} exists on this machine");
    }

    // The initial pods, and one more, as `kubectl scale` would add: it joins.
    for ordinal in 0..=replicas {
        let pod = format!("{sts_name}-{ordinal}");
        let out = start.run(&pod, &fake);
        assert!(out.status.success(), "{pod}: {}", text(&out));
        let args: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let flag = |name: &str| {
            let i = args
                .iter()
                .position(|a| a == name)
                .unwrap_or_else(|| panic!("{pod}: no {name} in {args:?}"));
            args[i + 1].clone()
        };
        let id = ordinal + 1;
        assert_eq!(flag("--id"), id.to_string(), "{pod}");
        if ordinal < replicas {
            assert!(
                !args.iter().any(|a| a == "--join" || a == "--peer"),
                "{args:?}"
            );
        } else {
            assert!(args.iter().any(|a| a == "--join"), "{pod}: {args:?}");
            let own = format!("{id}={pod}.{service}:{peer_port}");
            assert_eq!(flag("--peer"), own, "{pod}");
        }
        // Its peer certificate and key come from the peer Secret's volume.
        for (name, file) in [
            ("--peer-certificate", format!("node{id}.crt")),
            ("--peer-private-key", format!("node{id}.key")),
        ] {
            let path = flag(name);
            let (mount, in_volume) = m.mount_of(gateway, &path);
            assert_eq!(in_volume, file, "{pod}: {name} {path}");
            let volume = m.volume(s(&mount["name"]));
            assert_eq!(volume["secret"]["secretName"], "influx-gateway-peer-tls");
        }

        // The real binary: every flag and setting is accepted, and it stops at the first file
        // it loads, the API's certificate, before creating or binding anything.
        let out = start.run(&pod, &real);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{pod}: {said}");
        assert!(!said.contains("invalid configuration"), "{pod}: {said}");
        assert!(
            said.contains("cannot read the") && said.contains(https_cert),
            "{pod}: expected the missing {https_cert} in: {said}"
        );
    }

    // The same check fails where it should: a pod past the peer list that would not join,
    // a pod name without an ordinal, a setting the gateway does not know.
    let pod = format!("{sts_name}-{replicas}");
    let more = (replicas + 1).to_string();
    let out = start.run_with(&pod, &config, &more, &real);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let past = format!("node {} is not in the peer list", replicas + 1);
    assert!(text(&out).contains(&past), "{}", text(&out));
    let out = start.run(sts_name, &real);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no ordinal"), "{}", text(&out));
    let misspelt = dir.path().join("misspelt.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &misspelt,
        original.replacen("log_max_size", "log_max_sise", 1),
    )
    .unwrap();
    let initial = &start.initial_members;
    let out = start.run_with(&format!("{sts_name}-0"), &misspelt, initial, &real);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("unknown setting \"log_max_sise\""),
        "{}",
        text(&out)
    );

    // The TLS files the configuration names are in the Secrets' volumes.
    for (setting, secret, file) in [
        ("https_certificate", "influx-gateway-https", "tls.crt"),
        ("https_private_key", "influx-gateway-https", "tls.key"),
        ("peer_ca", "influx-gateway-peer-tls", "ca.crt"),
    ] {
        let (mount, in_volume) = m.mount_of(gateway, s(&settings[setting]));
        assert_eq!(in_volume, file, "{setting}");
        let volume = m.volume(s(&mount["name"]));
        assert_eq!(volume["secret"]["secretName"], secret, "{setting}");
    }
    // The Raft log is on the pod's own claim.
    let data_dir = s(&settings["data_dir"]);
    let log_dir = format!("{data_dir}/raft-log");
    let (mount, rest) = m.mount_of(gateway, &log_dir);
    assert_eq!(rest, "raft-log");
    assert_eq!(s(&mount["mountPath"]), data_dir);
    let claims: Vec<&str> = array(&m.statefulset()["spec"]["volumeClaimTemplates"])
        .map(|c| s(&c["metadata"]["name"]))
        .collect();
    assert!(claims.contains(&s(&mount["name"])), "{claims:?}");
}

#[test]
fn probes_ports_and_peers_agree_with_the_gateway() {
    let m = Manifests::load();
    let gateway = m.container("gateway");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, m.configmap_entry("gateway.toml")).unwrap();
    let settings = toml_file(&config);
    let api_port = port_of(s(&settings["listen"]));
    let peer_port = port_of(s(&settings["peer_listen"]));
    assert_eq!((api_port, peer_port), (8086, 8089));

    // The routes the probes ask for are the gateway's.
    let routes = std::fs::read_to_string(repo().join("gateway/src/http/mod.rs")).unwrap();
    let https = settings.get("https_certificate").is_some();
    for (probe, path) in [("readinessProbe", "/health"), ("livenessProbe", "/ping")] {
        let get = &gateway[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            routes.contains(&format!(".route(\"{path}\", get(")),
            "the gateway has no GET {path}"
        );
        assert_eq!(container_port(gateway, &get["port"]), api_port, "{probe}");
        let scheme = if https { "HTTPS" } else { "HTTP" };
        assert_eq!(get["scheme"], scheme, "{probe}");
    }
    assert_eq!(container_port(gateway, &"api".into()), api_port);
    assert_eq!(container_port(gateway, &"peer".into()), peer_port);

    // Every initial member is a pod of the StatefulSet, by its name under the headless
    // Service, on the peer port; node id = ordinal + 1.
    let sts = m.statefulset();
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    let sts_name = s(&sts["metadata"]["name"]);
    let service_name = s(&sts["spec"]["serviceName"]);
    let peers = settings["peers"].as_object().expect("a [peers] table");
    let expected: BTreeMap<String, String> = (0..replicas)
        .map(|i| {
            let addr = format!("{sts_name}-{i}.{service_name}:{peer_port}");
            ((i + 1).to_string(), addr)
        })
        .collect();
    let listed: BTreeMap<String, String> = peers
        .iter()
        .map(|(id, a)| (id.clone(), s(a).to_owned()))
        .collect();
    assert_eq!(listed, expected);
    // Pods start together: none is ready before a quorum is up.
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert!(selects(
        &sts["spec"]["selector"]["matchLabels"],
        m.pod_labels()
    ));

    // The headless Service publishes the pods before they are ready, with the peer port.
    let headless = &m.get("Service", service_name)["spec"];
    assert_eq!(headless["clusterIP"], "None");
    assert_eq!(headless["publishNotReadyAddresses"], true);
    assert!(selects(&headless["selector"], m.pod_labels()));
    let peer = array(&headless["ports"])
        .find(|p| p["name"] == "peer")
        .unwrap();
    assert_eq!(peer["port"].as_u64(), Some(peer_port.into()));
    assert_eq!(container_port(gateway, &peer["targetPort"]), peer_port);

    // The client Service: the API of the ready pods.
    let client = &m.get("Service", "influx-gateway")["spec"];
    assert_ne!(client["clusterIP"], "None");
    assert_ne!(client["publishNotReadyAddresses"], true);
    assert!(selects(&client["selector"], m.pod_labels()));
    let api = array(&client["ports"])
        .find(|p| p["name"] == "api")
        .unwrap();
    assert_eq!(api["port"].as_u64(), Some(8086));
    assert_eq!(container_port(gateway, &api["targetPort"]), api_port);

    let pdb = &m.get("PodDisruptionBudget", "influx-gateway")["spec"];
    assert_eq!(pdb["maxUnavailable"], 1);
    assert!(selects(&pdb["selector"]["matchLabels"], m.pod_labels()));

    // Non-root, and read-only root filesystems.
    assert_eq!(m.pod_spec()["securityContext"]["runAsNonRoot"], true);
    for c in containers(sts) {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_ne!(sc["runAsUser"], 0, "{}", c["name"]);
        assert!(
            c["resources"]["requests"]["cpu"].is_string(),
            "{}",
            c["name"]
        );
        assert!(
            c["resources"]["requests"]["memory"].is_string(),
            "{}",
            c["name"]
        );
    }
}

#[test]
fn influxd_in_the_pod_is_where_the_gateway_looks_for_it() {
    let m = Manifests::load();
    let influxd = m.container("influxd");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, m.configmap_entry("gateway.toml")).unwrap();
    let settings = toml_file(&config);

    // influxd reads the ConfigMap's influxdb.conf.
    let command: Vec<&str> = array(&influxd["command"]).map(s).collect();
    let at = command
        .iter()
        .position(|a| *a == "-config")
        .expect("-config");
    assert_eq!(m.configmap_file(influxd, command[at + 1]), "influxdb.conf");

    // As influxd itself reads it (Debian's influxd 1.6, installed by scripts/deps).
    let conf = dir.path().join("influxdb.conf");
    std::fs::write(&conf, m.configmap_entry("influxdb.conf")).unwrap();
    let out = run(Command::new("influxd")
        .arg("config")
        .arg("-config")
        .arg(&conf));
    assert!(out.status.success(), "influxd config: {}", text(&out));
    let merged = dir.path().join("merged.toml");
    std::fs::write(&merged, &out.stdout).unwrap();
    let merged = toml_file(&merged);

    // Its API and RPC are the gateway's influxd_url and influxd_rpc, on localhost only.
    let url = s(&settings["influxd_url"]);
    let http = s(&merged["http"]["bind-address"]);
    assert_eq!(url, format!("http://{http}"));
    assert_eq!(s(&merged["bind-address"]), s(&settings["influxd_rpc"]));
    for addr in [http, s(&merged["bind-address"])] {
        assert!(addr.starts_with("127.0.0.1:"), "influxd listens on {addr}");
    }
    // Its data is on the pod's own claim.
    let claims: Vec<&str> = array(&m.statefulset()["spec"]["volumeClaimTemplates"])
        .map(|c| s(&c["metadata"]["name"]))
        .collect();
    for dir in [
        &merged["meta"]["dir"],
        &merged["data"]["dir"],
        &merged["data"]["wal-dir"],
    ] {
        let (mount, _) = m.mount_of(influxd, s(dir));
        assert!(
            claims.contains(&s(&mount["name"])),
            "{dir} is not on a claim"
        );
    }
}

/// The Containerfile's instructions, as `dockerfile-parse` reads them.
fn containerfile() -> Vec<(String, String)> {
    let code = "import json, sys\n\
                from dockerfile_parse import DockerfileParser\n\
                p = DockerfileParser(fileobj=open(sys.argv[1], 'rb'))\n\
                print(json.dumps([[i['instruction'], i['value']] for i in p.structure]))";
    let path = repo().join("deploy/container/Containerfile");
    let parsed = python_json(code, &[&path]);
    array(&parsed)
        .map(|i| (s(&i[0]).to_owned(), s(&i[1]).to_owned()))
        .collect()
}

/// The Debian package that holds `lib` (a path `ldd` printed).
fn debian_package(lib: &str) -> String {
    let real = std::fs::canonicalize(lib).unwrap_or_else(|e| panic!("{lib}: {e}"));
    let real = real.to_str().unwrap();
    // Debian 12 merged /lib into /usr/lib; dpkg knows each file under one of the two.
    let candidates = [
        real.to_owned(),
        real.strip_prefix("/usr").unwrap_or(real).to_owned(),
        lib.to_owned(),
    ];
    for path in candidates {
        let out = run(Command::new("dpkg").arg("-S").arg(&path));
        if out.status.success() {
            let line = String::from_utf8(out.stdout).unwrap();
            let pkg = line.split(':').next().unwrap().trim().to_owned();
            return pkg;
        }
    }
    panic!("no Debian package holds {lib}");
}

#[test]
fn the_containerfile_parses_and_builds_the_gateway_from_what_exists() {
    let instructions = containerfile();
    const KNOWN: [&str; 18] = [
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
        "COMMENT",
    ];
    for (i, _) in &instructions {
        assert!(KNOWN.contains(&i.as_str()), "unknown instruction {i}");
    }
    let stages: Vec<(usize, &str)> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (i, _))| i == "FROM")
        .map(|(n, (_, v))| (n, v.as_str()))
        .collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    let (builder_from, runtime_from) = (stages[0], stages[1]);
    assert!(
        builder_from.1.starts_with("docker.io/library/rust:")
            && builder_from.1.contains("bookworm"),
        "{builder_from:?}"
    );
    assert!(builder_from.1.ends_with(" AS builder"), "{builder_from:?}");
    assert!(
        runtime_from
            .1
            .starts_with("docker.io/library/debian:bookworm-slim"),
        "{runtime_from:?}"
    );
    let builder = &instructions[builder_from.0 + 1..runtime_from.0];
    let runtime = &instructions[runtime_from.0 + 1..];
    let of = |stage: &[(String, String)], kind: &str| -> Vec<String> {
        stage
            .iter()
            .filter(|(i, _)| i == kind)
            .map(|(_, v)| v.clone())
            .collect()
    };

    // The builder installs what scripts/deps installs for the build, and builds the gateway.
    let builder_runs = of(builder, "RUN").join("\n");
    let deps = std::fs::read_to_string(repo().join("scripts/deps")).unwrap();
    for package in ["protobuf-compiler", "libclang-dev", "librocksdb-dev"] {
        assert!(
            deps.contains(package),
            "scripts/deps no longer installs {package}"
        );
        assert!(
            builder_runs.contains(package),
            "the builder does not install {package}"
        );
    }
    assert!(
        builder_runs.contains("cargo build --release --locked -p gateway --bin gateway"),
        "{builder_runs}"
    );

    // What the builder copies from the context exists, and is the whole workspace with its
    // .cargo/config.toml (RocksDB linked from Debian's library).
    let mut copied = BTreeSet::new();
    for copy in of(builder, "COPY") {
        assert!(!copy.starts_with("--from"), "{copy}");
        let words: Vec<&str> = copy.split_whitespace().collect();
        for source in &words[..words.len() - 1] {
            assert!(
                repo().join(source).exists(),
                "COPY {source}: not in the repository"
            );
            copied.insert(source.to_string());
        }
    }
    let workspace = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let members = workspace
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .expect("workspace members");
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        assert!(
            copied.contains(member),
            "the workspace member {member} is not copied"
        );
    }
    for file in ["Cargo.toml", "Cargo.lock", ".cargo"] {
        assert!(copied.contains(file), "{file} is not copied");
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for ignored in ["target", ".git", "tests/clients/.venv"] {
        assert!(
            ignore.lines().any(|l| l.trim() == ignored),
            ".dockerignore: {ignored}"
        );
    }

    // The binary copied into the runtime is the one the crate builds, and the entry point.
    let metadata = run(
        Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(repo()),
    );
    assert!(metadata.status.success(), "{}", text(&metadata));
    let metadata: Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let package = array(&metadata["packages"])
        .find(|p| p["name"] == "gateway")
        .unwrap();
    let bins: Vec<&str> = array(&package["targets"])
        .filter(|t| array(&t["kind"]).any(|k| k == "bin"))
        .map(|t| s(&t["name"]))
        .collect();
    assert_eq!(bins, ["gateway"]);
    let workdir = of(builder, "WORKDIR");
    let src = workdir.last().expect("a WORKDIR in the builder");
    let binary_copy = format!(
        "--from=builder {src}/target/release/{} /usr/local/bin/gateway",
        bins[0]
    );
    let runtime_copies = of(runtime, "COPY");
    assert!(runtime_copies.contains(&binary_copy), "{runtime_copies:?}");
    let entrypoint: Vec<String> = serde_json::from_str(&of(runtime, "ENTRYPOINT")[0]).unwrap();
    assert_eq!(entrypoint, ["/usr/local/bin/gateway"]);
    // The pods start `gateway` from PATH, and seeding runs `influxd` from PATH.
    let m = Manifests::load();
    assert!(m
        .configmap_entry("start-gateway.sh")
        .contains("exec gateway "));
    assert!(runtime_copies
        .iter()
        .any(|c| c.ends_with(" /usr/local/bin/influxd")));
    let dpkg = run(Command::new("dpkg").args(["-L", "influxdb"]));
    assert!(
        text(&dpkg).lines().any(|l| l == "/usr/bin/influxd"),
        "Debian's influxdb has no /usr/bin/influxd"
    );
    assert!(
        builder_runs.contains("apt-get download influxdb"),
        "{builder_runs}"
    );

    // Non-root, the data directory a volume, the API and peer ports exposed.
    let user = of(runtime, "USER");
    let uid: u64 = user[0]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric user");
    assert_ne!(uid, 0);
    assert_eq!(m.container("gateway")["securityContext"]["runAsUser"], uid);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, m.configmap_entry("gateway.toml")).unwrap();
    let settings = toml_file(&config);
    let volume: Vec<String> = serde_json::from_str(&of(runtime, "VOLUME")[0]).unwrap();
    assert_eq!(volume, [s(&settings["data_dir"])]);
    let exposed: Vec<u16> = of(runtime, "EXPOSE")
        .join(" ")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    for addr in ["listen", "peer_listen"] {
        let port = port_of(s(&settings[addr]));
        assert!(exposed.contains(&port), "{addr} {port} is not exposed");
    }

    // Every shared library the gateway links comes with the runtime's packages: those it
    // installs, what they depend on, or the base image's C and C++ runtimes.
    let runtime_runs = of(runtime, "RUN").join("\n");
    let install = runtime_runs
        .split("apt-get install -y --no-install-recommends ")
        .nth(1)
        .expect("an apt-get install in the runtime")
        .split("&&")
        .next()
        .unwrap();
    let mut provided: BTreeSet<String> = ["libc6", "libgcc-s1", "libstdc++6"]
        .map(String::from)
        .into();
    for package in install.split_whitespace() {
        provided.insert(package.to_owned());
        let depends = run(Command::new("apt-cache").args(["depends", package]));
        assert!(
            depends.status.success(),
            "apt-cache depends {package}: {}",
            text(&depends)
        );
        for line in String::from_utf8(depends.stdout).unwrap().lines() {
            if let Some(dep) = line.trim().strip_prefix("Depends: ") {
                provided.insert(dep.trim().to_owned());
            }
        }
    }
    assert!(provided.contains("ca-certificates"), "{install}");
    let ldd = run(Command::new("ldd").arg(gateway_binary()));
    assert!(ldd.status.success(), "{}", text(&ldd));
    let mut linked = 0;
    for line in String::from_utf8(ldd.stdout).unwrap().lines() {
        let Some((_, path)) = line.split_once("=> ") else {
            continue;
        };
        let path = path.split(" (").next().unwrap().trim();
        let package = debian_package(path);
        assert!(
            provided.contains(&package),
            "the gateway links {path} of {package}, which the runtime image does not install"
        );
        linked += 1;
    }
    assert!(linked >= 3, "ldd found {linked} libraries");
}

/// A process killed when dropped, so a failing test leaves none behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `sh` block of the README's "Certificates and Secrets", cut where the Secrets are
/// created: the commands that make the files, and the `kubectl` ones, continuation lines
/// joined.
fn readme_certificate_commands() -> (String, Vec<String>) {
    let readme = std::fs::read_to_string(repo().join("deploy/kubernetes/README.md")).unwrap();
    let section = readme
        .split("## Certificates and Secrets")
        .nth(1)
        .expect("a Certificates and Secrets section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("an sh block");
    let at = block.find("\nkubectl").expect("kubectl commands");
    let kubectl = block[at..]
        .replace("\\\n", " ")
        .lines()
        .filter(|l| l.starts_with("kubectl"))
        .map(String::from)
        .collect();
    (block[..at].to_owned(), kubectl)
}

fn openssl(args: &[&str], dir: &Path) -> Output {
    run(Command::new("openssl").args(args).current_dir(dir))
}

#[test]
fn the_readmes_certificates_serve_the_peers_and_the_api_and_fill_the_secrets() {
    let m = Manifests::load();
    let gateway = m.container("gateway");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, m.configmap_entry("gateway.toml")).unwrap();
    let settings = toml_file(&config);

    // The README's commands, as written, with openssl.
    let (make, kubectl) = readme_certificate_commands();
    let out = run(Command::new("bash")
        .args(["-euo", "pipefail", "-c", &make])
        .current_dir(dir.path()));
    assert!(
        out.status.success(),
        "the README's commands: {}",
        text(&out)
    );
    let tls = dir.path().join("tls");

    // Each node's certificate: of the peer CA, for both ends of a link, naming the host the
    // other nodes dial; not of the API's CA.
    for (id, addr) in settings["peers"].as_object().unwrap() {
        let cert = format!("node{id}.crt");
        for purpose in ["sslserver", "sslclient"] {
            let out = openssl(
                &[
                    "verify",
                    "-CAfile",
                    "peer-ca.pem",
                    "-purpose",
                    purpose,
                    &cert,
                ],
                &tls,
            );
            assert!(out.status.success(), "{cert} {purpose}: {}", text(&out));
        }
        let out = openssl(&["verify", "-CAfile", "api-ca.pem", &cert], &tls);
        assert!(
            !out.status.success(),
            "{cert} verifies against the API's CA"
        );
        let host = s(addr).rsplit_once(':').unwrap().0;
        let out = openssl(&["x509", "-noout", "-in", &cert, "-checkhost", host], &tls);
        assert!(
            text(&out).contains("does match certificate"),
            "{cert} does not name {host}: {}",
            text(&out)
        );
    }
    // The API's: the client Service's name and localhost.
    for (check, name) in [
        ("-checkhost", "influx-gateway"),
        ("-checkhost", "localhost"),
        ("-checkip", "127.0.0.1"),
    ] {
        let out = openssl(&["x509", "-noout", "-in", "api.crt", check, name], &tls);
        assert!(
            text(&out).contains("does match certificate"),
            "api.crt does not name {name}"
        );
    }

    // The Secrets the README creates hold the files the pods read, under the names they read.
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for command in &kubectl {
        let words: Vec<&str> = command.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "generic") else {
            continue;
        };
        let keys = secrets.entry(words[at + 1].to_owned()).or_default();
        for word in &words[at + 2..] {
            let Some(source) = word.strip_prefix("--from-file=") else {
                continue;
            };
            let (key, file) = source.split_once('=').unwrap_or((source, source));
            assert!(tls.join(file).is_file(), "{command}: no {file}");
            keys.insert(key.to_owned());
        }
    }
    let needed = |path: &str| {
        let (mount, file) = m.mount_of(gateway, path);
        let volume = m.volume(s(&mount["name"]));
        (
            s(&volume["secret"]["secretName"]).to_owned(),
            file.to_owned(),
        )
    };
    let mut files = vec![
        needed(s(&settings["https_certificate"])),
        needed(s(&settings["https_private_key"])),
        needed(s(&settings["peer_ca"])),
    ];
    for id in settings["peers"].as_object().unwrap().keys() {
        for ext in ["crt", "key"] {
            files.push(needed(&format!(
                "/etc/influx-gateway/peer-tls/node{id}.{ext}"
            )));
        }
    }
    for (secret, file) in files {
        let keys = secrets
            .get(&secret)
            .unwrap_or_else(|| panic!("no Secret {secret}"));
        assert!(
            keys.contains(&file),
            "the Secret {secret} has no {file}: {keys:?}"
        );
    }

    // The gateway serves the README's API certificate and loads the peer files: started with
    // them on a loopback address of its own, `/ping` answers over HTTPS to a client that
    // trusts only the API's CA and dials localhost.
    let slot = tests::cluster::Slot::acquire();
    let ip = slot.ip(1);
    let data = dir.path().join("data");
    let tls_file = |f: &str| tls.join(f).display().to_string();
    let child = Command::new(gateway_binary())
        .arg("--config")
        .arg(&config)
        .args(["--id", "1", "--data-dir", data.to_str().unwrap()])
        .args(["--listen", &format!("{ip}:8086")])
        .args(["--peer-listen", &format!("{ip}:8089")])
        .args(["--https-certificate", &tls_file("api.crt")])
        .args(["--https-private-key", &tls_file("api.key")])
        .args(["--peer-ca", &tls_file("peer-ca.pem")])
        .args(["--peer-certificate", &tls_file("node1.crt")])
        .args(["--peer-private-key", &tls_file("node1.key")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let curl = |ca: &str| {
        run(Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args(["--cacert", &tls_file(ca)])
            .args(["--resolve", &format!("localhost:8086:{ip}")])
            .arg("https://localhost:8086/ping"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = curl("api-ca.pem");
        if out.stdout == b"204" {
            break;
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("the gateway exited with {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no HTTPS /ping: {}",
            text(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = curl("peer-ca.pem");
    assert!(
        !out.status.success(),
        "the API verified against the peer CA"
    );
}

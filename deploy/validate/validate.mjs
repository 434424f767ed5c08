// Validates what deploy/kubernetes renders to, for the base and every overlay:
//   1. every object against its schema: Kubernetes (kubernetes-models) and Prometheus Operator
//      (@kubernetes-models/prometheus-operator); an apiVersion/kind with no model fails;
//   2. nodewarden's policy for its DaemonSet (read-only host paths but the state dir, capabilities,
//      no privilege, probes, resources, tolerations, ...), the Service, the ConfigMap reference
//      and the Prometheus Operator objects; the metrics port's protection (the agent on the
//      loopback behind kube-rbac-proxy, or TLS on its own listener; monitors over HTTPS with a
//      token; the proxy's image, flags and RBAC; the NetworkPolicy); least privilege (no kubelet
//      access in the base role, nodes/proxy only in its opt-in overlay, and every pod metadata
//      source the variant's config turns on has its RBAC, none that it leaves off);
//   3. the PrometheusRule carries exactly the groups of deploy/prometheus/*-rules.yaml.
//
//   node validate.mjs                  render with `kubectl kustomize` and check everything
//   node validate.mjs --configs DIR    also write each variant's nodewarden.yaml to DIR/<variant>.yaml
//   node validate.mjs --self-test      break the rendered objects one way at a time and require
//                                      that each break is reported (each assertion can fail)
//
// Schemas of kubernetes-models allow unknown fields, so a misspelt field is not a schema error;
// the policy checks read the exact field names, so a misspelt security field fails them.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, parse } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const deploy = resolve(here, "..");
const kube = join(deploy, "kubernetes");

// Every kustomization users apply: the default (deploy/kubernetes), each overlay, and the
// placement overlay's optional admission policy.
function variants() {
  const list = [{ name: "default", dir: kube }];
  const overlays = join(kube, "overlays");
  for (const d of readdirSync(overlays, { withFileTypes: true }).filter((e) => e.isDirectory())) {
    list.push({ name: d.name, dir: join(overlays, d.name) });
  }
  list.push({ name: "placement-node-restriction", dir: join(overlays, "placement", "node-restriction") });
  return list.sort((a, b) => a.name.localeCompare(b.name));
}

function render(dir) {
  const text = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", maxBuffer: 64 << 20 });
  const docs = parseAllDocuments(text);
  for (const d of docs) if (d.errors.length) throw new Error(`${dir}: ${d.errors[0].message}`);
  return docs.map((d) => d.toJS()).filter((o) => o != null);
}

// ---- 1. schemas ----------------------------------------------------------------------------

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const path =
    group === "monitoring.coreos.com"
      ? `@kubernetes-models/prometheus-operator/${group}/${version}`
      : group === ""
        ? `kubernetes-models/${version}`
        : `kubernetes-models/${group}/${version}`;
  let mod;
  try {
    mod = await import(path);
  } catch {
    return null;
  }
  return mod[kind] ?? null;
}

async function schemaErrors(obj) {
  const id = `${obj?.kind}/${obj?.metadata?.name}`;
  if (!obj?.apiVersion || !obj?.kind) return [`${id}: no apiVersion or kind`];
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (!Model) return [`${id}: no schema for ${obj.apiVersion} ${obj.kind}`];
  try {
    new Model(structuredClone(obj)).validate();
    return [];
  } catch (e) {
    return [`${id}: schema: ${e.message}`];
  }
}

// ---- 2. policy -----------------------------------------------------------------------------

const STATE_DIR = "/var/lib/nodewarden";

function arg(container, flag) {
  const args = container.args ?? [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith(`${flag}=`)) return args[i].slice(flag.length + 1);
    if (args[i] === flag) return args[i + 1];
  }
  return undefined;
}

function argsAll(container, flag) {
  const out = [];
  const args = container.args ?? [];
  for (let i = 0; i < args.length; i++) {
    if (args[i].startsWith(`${flag}=`)) out.push(args[i].slice(flag.length + 1));
    else if (args[i] === flag) out.push(args[i + 1]);
  }
  return out;
}

const QUANTITY = /^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/;
function quantity(q) {
  const m = QUANTITY.exec(String(q));
  if (!m) return NaN;
  const mult = { m: 1e-3, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}

// The pod's containers: the agent, and kube-rbac-proxy in front of it unless the agent serves TLS
// itself (components/agent-tls).
const AGENT = "nodewarden";
const PROXY = "kube-rbac-proxy";
const agentOf = (ds) => ds.spec.template.spec.containers.find((c) => c.name === AGENT);
const proxyOf = (ds) => ds.spec?.template?.spec?.containers?.find((c) => c.name === PROXY);
const METRICS_PORT = 9465;

// Each check returns a message when the object breaks it. Names are what --self-test refers to.
const daemonSetChecks = {
  "containers": (ds) => {
    const names = (ds.spec?.template?.spec?.containers ?? []).map((c) => c.name);
    const ok = names[0] === AGENT && (names.length === 1 || (names.length === 2 && names[1] === PROXY));
    return ok ? null : `the containers must be ${AGENT} and optionally ${PROXY}, are ${JSON.stringify(names)}`;
  },
  "rolling update 10%": (ds) =>
    ds.spec?.updateStrategy?.type === "RollingUpdate" && ds.spec?.updateStrategy?.rollingUpdate?.maxUnavailable === "10%"
      ? null
      : "updateStrategy must be RollingUpdate with maxUnavailable 10%",
  "priority class": (ds) =>
    ds.spec.template.spec.priorityClassName === "system-node-critical" ? null : "priorityClassName must be system-node-critical",
  "tolerate everything": (ds) =>
    (ds.spec.template.spec.tolerations ?? []).some((t) => t.operator === "Exists" && !t.key && !t.effect)
      ? null
      : "tolerations must include {operator: Exists} (no key, no effect)",
  "host namespaces": (ds) => {
    const s = ds.spec.template.spec;
    const on = ["hostNetwork", "hostIPC"].filter((k) => s[k] === true);
    if (on.length) return `${on.join(", ")} must not be true`;
    // cgroup.procs / tasks list pids of the reader's PID namespace: the agent needs the host's.
    return s.hostPID === true ? null : "hostPID must be true (cgroup pid lists are per PID namespace)";
  },
  "service account": (ds) => (ds.spec.template.spec.serviceAccountName === "nodewarden" ? null : "serviceAccountName must be nodewarden"),
  "termination grace": (ds) => {
    const g = ds.spec.template.spec.terminationGracePeriodSeconds;
    return typeof g === "number" && g >= 15 ? null : "terminationGracePeriodSeconds must be set, at least 15 (the spool flush and one HTTP push)";
  },
  "not privileged": (ds) => {
    const sc = agentOf(ds).securityContext ?? {};
    const bad = [];
    if (sc.privileged !== false) bad.push("privileged must be false");
    if (sc.allowPrivilegeEscalation !== false) bad.push("allowPrivilegeEscalation must be false");
    if (sc.readOnlyRootFilesystem !== true) bad.push("readOnlyRootFilesystem must be true");
    return bad.length ? bad.join("; ") : null;
  },
  "capabilities": (ds) => {
    const caps = agentOf(ds).securityContext?.capabilities ?? {};
    const drop = caps.drop ?? [];
    const add = caps.add ?? [];
    if (!(drop.length === 1 && drop[0] === "ALL")) return `capabilities.drop must be [ALL], is ${JSON.stringify(drop)}`;
    if (!(add.length === 1 && add[0] === "DAC_READ_SEARCH")) return `capabilities.add must be [DAC_READ_SEARCH] only, is ${JSON.stringify(add)}`;
    return null;
  },
  "seccomp": (ds) => {
    const pod = ds.spec.template.spec.securityContext?.seccompProfile?.type;
    const c = agentOf(ds).securityContext?.seccompProfile?.type;
    return (c ?? pod) === "RuntimeDefault" ? null : "seccompProfile must be RuntimeDefault";
  },
  "host paths read-only": (ds) => {
    const spec = ds.spec.template.spec;
    const hostVolumes = new Map(spec.volumes.filter((v) => v.hostPath).map((v) => [v.name, v.hostPath]));
    const bad = [];
    for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
      for (const m of c.volumeMounts ?? []) {
        const hp = hostVolumes.get(m.name);
        if (!hp) continue;
        if (hp.path === STATE_DIR) {
          if (m.readOnly) bad.push(`${m.name}: the state dir must be writable`);
          if (hp.type !== "DirectoryOrCreate") bad.push(`${m.name}: the state dir must be DirectoryOrCreate`);
          if (m.mountPath !== arg(c, "--state-dir")) bad.push(`${m.name}: mounted at ${m.mountPath}, --state-dir is ${arg(c, "--state-dir")}`);
        } else if (m.readOnly !== true) {
          bad.push(`${m.name} (${hp.path}) must be mounted readOnly`);
        }
        if (m.mountPropagation === "Bidirectional") bad.push(`${m.name}: no Bidirectional propagation`);
      }
    }
    if (![...hostVolumes.values()].some((hp) => hp.path === STATE_DIR)) bad.push(`no hostPath volume for ${STATE_DIR}`);
    return bad.length ? bad.join("; ") : null;
  },
  "no runtime sockets": (ds) => {
    // A read-only mount does not stop connect() on a unix socket: no runtime state root itself.
    const forbidden = ["/run", "/var/run", "/run/containerd", "/var/run/containerd", "/run/containers", "/run/containers/storage", "/run/crio", "/var/run/crio", "/var/run/docker.sock", "/run/docker.sock", "/", "/var/lib/kubelet"];
    const bad = ds.spec.template.spec.volumes.filter((v) => v.hostPath && forbidden.includes(v.hostPath.path.replace(/\/+$/, "") || "/"));
    return bad.length ? `host paths that hold sockets or the whole node: ${bad.map((v) => v.hostPath.path).join(", ")}` : null;
  },
  "paths are mounted": (ds) => {
    const c = agentOf(ds);
    const mounts = (c.volumeMounts ?? []).map((m) => m.mountPath);
    const under = (p) => mounts.some((m) => p === m || p.startsWith(m.endsWith("/") ? m : `${m}/`) || m.startsWith(`${p}/`));
    const bad = [];
    for (const flag of ["--proc-root", "--cgroup-root", "--log-root", "--state-dir"]) {
      const p = arg(c, flag);
      if (!p) bad.push(`${flag} missing`);
      else if (!under(p)) bad.push(`${flag} ${p} is not mounted`);
    }
    for (const p of [...argsAll(c, "--runtime-state-dir"), ...argsAll(c, "--journal-dir")]) if (!under(p)) bad.push(`${p} is not mounted`);
    const config = arg(c, "--config");
    if (!config || !under(config)) bad.push(`--config ${config} is not mounted`);
    return bad.length ? bad.join("; ") : null;
  },
  "downward API env": (ds) => {
    const env = agentOf(ds).env ?? [];
    const field = (n) => env.find((e) => e.name === n)?.valueFrom?.fieldRef?.fieldPath;
    const bad = [];
    if (field("NODE_NAME") !== "spec.nodeName") bad.push("NODE_NAME must come from spec.nodeName");
    if (field("NODE_IP") !== "status.hostIP") bad.push("NODE_IP must come from status.hostIP");
    return bad.length ? bad.join("; ") : null;
  },
  // The port the cluster sees is the proxy's, or the agent's own when it serves TLS.
  "metrics port": (ds) => {
    const server = proxyOf(ds) ?? agentOf(ds);
    const ports = server.ports ?? [];
    const bad = [];
    if (!ports.some((p) => p.name === "metrics" && p.containerPort === METRICS_PORT)) bad.push(`${server.name} needs a container port named metrics, ${METRICS_PORT}`);
    if (proxyOf(ds) && (agentOf(ds).ports ?? []).length) bad.push(`${AGENT} must expose no port beside ${PROXY}`);
    return bad.length ? bad.join("; ") : null;
  },
  // HTTPS to the served port: through the proxy (a number: a named port must be the probing
  // container's own) or to the agent's own TLS port.
  "probes": (ds) => {
    const c = agentOf(ds);
    const port = proxyOf(ds) ? METRICS_PORT : "metrics";
    const bad = [];
    for (const [probe, path] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]]) {
      const g = c[probe]?.httpGet;
      if (g?.path !== path || g?.port !== port || g?.scheme !== "HTTPS") bad.push(`${probe} must be GET ${path} on port ${port} over HTTPS`);
    }
    return bad.length ? bad.join("; ") : null;
  },
  "resources": (ds) => {
    const r = agentOf(ds).resources ?? {};
    const bad = [];
    for (const k of ["cpu", "memory"]) {
      const req = quantity(r.requests?.[k]);
      const lim = quantity(r.limits?.[k]);
      if (!(req > 0)) bad.push(`requests.${k} missing`);
      if (!(lim > 0)) bad.push(`limits.${k} missing`);
      if (req > lim) bad.push(`requests.${k} above limits.${k}`);
    }
    // The measured peak (bench/README.md, log_rss.sh): 27.9 MiB; the limit must leave headroom.
    if (quantity(r.limits?.memory) < 2 * 27.9 * 1024 ** 2) bad.push("limits.memory under twice the measured peak RSS (27.9 MiB)");
    return bad.length ? bad.join("; ") : null;
  },
};

function policyErrors(objects, variant) {
  const errors = [];
  const byKind = (k) => objects.filter((o) => o.kind === k);
  const dss = byKind("DaemonSet");
  if (variant !== "placement-node-restriction") {
    if (dss.length !== 1) errors.push(`expected one DaemonSet, found ${dss.length}`);
    for (const kind of ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap"]) {
      if (!byKind(kind).length) errors.push(`no ${kind}`);
    }
  }
  for (const ds of dss) {
    for (const [name, check] of Object.entries(daemonSetChecks)) {
      let msg;
      try {
        msg = check(ds);
      } catch (e) {
        msg = `check failed on a malformed object: ${e.message}`;
      }
      if (msg) errors.push(`DaemonSet ${ds.metadata.name}: [${name}] ${msg}`);
    }
    // The config volume names a ConfigMap that is rendered, generated with a content hash.
    const cmName = ds.spec.template.spec.volumes?.find((v) => v.name === "config")?.configMap?.name;
    const cm = byKind("ConfigMap").find((c) => c.metadata.name === cmName);
    if (!cm) errors.push(`[config map] the DaemonSet's ConfigMap ${cmName} is not rendered`);
    else if (!/^nodewarden-config-[a-z0-9]{10}$/.test(cm.metadata.name)) errors.push(`[config map] ${cm.metadata.name} has no content hash (configMapGenerator)`);
    else if (typeof cm.data?.["nodewarden.yaml"] !== "string") errors.push("[config map] no nodewarden.yaml key");
  }
  const ns = byKind("Namespace")[0];
  if (ns && ns.metadata.labels?.["pod-security.kubernetes.io/enforce"] !== "privileged") {
    errors.push("[namespace] pod-security.kubernetes.io/enforce must be privileged (hostPath volumes)");
  }
  for (const svc of byKind("Service")) {
    if (svc.spec.clusterIP !== "None") errors.push(`[service] ${svc.metadata.name} must be headless`);
    if (!svc.spec.ports?.some((p) => p.name === "metrics" && p.port === 9465)) errors.push(`[service] ${svc.metadata.name} needs port metrics 9465`);
  }
  // RBAC: read-only outside the placement overlay's own role.
  for (const role of byKind("ClusterRole")) {
    const write = (role.rules ?? []).filter((r) => r.verbs.some((v) => !["get", "list", "watch"].includes(v)));
    if (role.metadata.name === "nodewarden" && write.length) errors.push(`[rbac] ClusterRole nodewarden must be read-only: ${JSON.stringify(write)}`);
    if (role.metadata.name === "nodewarden-placement") {
      const allowed = (r) => r.apiGroups.every((g) => g === "") && r.resources.every((x) => ["nodes", "nodes/status"].includes(x)) && r.verbs.every((v) => ["get", "patch"].includes(v));
      if (!role.rules.every(allowed)) errors.push(`[rbac] nodewarden-placement may only get/patch nodes and nodes/status`);
    }
    if ((role.rules ?? []).some((r) => r.verbs.includes("*") || (r.resources ?? []).includes("*") || (r.nonResourceURLs ?? []).some((u) => u.includes("*")) || (r.resources ?? []).includes("secrets"))) errors.push(`[rbac] ${role.metadata.name}: no wildcards, no secrets`);
  }
  if (variant !== "placement-node-restriction") errors.push(...protectionErrors(objects, variant));
  return errors;
}

// ---- 2b. the metrics port's protection and least privilege ---------------------------------

// The agent's built-in defaults for the keys read below (agent/config.h): a key the variant's
// config leaves out has this value.
const BUILTIN = { listen: "0.0.0.0:9465", kubelet: true, apiserver: true };

function agentConfig(objects, ds) {
  const cmName = ds.spec.template.spec.volumes?.find((v) => v.name === "config")?.configMap?.name;
  const text = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === cmName)?.data?.["nodewarden.yaml"];
  return (text && parse(text)) || {};
}

// host and port of "host:port" / "[v6]:port".
function splitHostPort(addr) {
  const m = /^\[([^\]]*)\]:(\d+)$/.exec(addr) ?? /^([^:]*):(\d+)$/.exec(addr);
  return m ? { host: m[1], port: Number(m[2]) } : null;
}
const isLoopback = (host) => /^127\./.test(host) || host === "::1" || host === "localhost";

// The ClusterRole rules in force for a service account: those of every ClusterRole that a
// rendered ClusterRoleBinding binds to it.
function rulesOf(objects, namespace, name) {
  const roles = new Set(
    objects
      .filter((o) => o.kind === "ClusterRoleBinding" && (o.subjects ?? []).some((s) => s.kind === "ServiceAccount" && s.name === name && s.namespace === namespace))
      .map((b) => b.roleRef?.name),
  );
  return objects.filter((o) => o.kind === "ClusterRole" && roles.has(o.metadata.name)).flatMap((r) => r.rules ?? []);
}
const allows = (rules, group, resource, verb) =>
  rules.some((r) => (r.apiGroups ?? []).includes(group) && (r.resources ?? []).includes(resource) && r.verbs.includes(verb));
const allowsURL = (rules, url) => rules.some((r) => (r.nonResourceURLs ?? []).includes(url) && r.verbs.includes("get"));
const boundTo = (objects, role) => objects.filter((o) => o.kind === "ClusterRoleBinding" && o.roleRef?.name === role).flatMap((b) => b.subjects ?? []);

const PROXY_IMAGE = /^quay\.io\/brancz\/kube-rbac-proxy:v\d+\.\d+\.\d+$/;

function protectionErrors(objects, variant) {
  const errors = [];
  const byKind = (k) => objects.filter((o) => o.kind === k);
  const ds = byKind("DaemonSet")[0];
  if (!ds) return errors;
  const agent = agentOf(ds);
  const proxy = proxyOf(ds);
  const config = agentConfig(objects, ds);
  const agentRules = rulesOf(objects, "nodewarden", ds.spec.template.spec.serviceAccountName);

  // [listen] Plain HTTP only on the pod's loopback behind the proxy; without the proxy, TLS.
  const listen = arg(agent, "--listen") ?? config.listen ?? BUILTIN.listen;
  const hp = splitHostPort(listen);
  if (!hp) errors.push(`[listen] the agent's listen address ${listen} is not host:port`);
  else if (proxy) {
    if (!isLoopback(hp.host)) errors.push(`[listen] the agent listens on ${listen}: behind ${PROXY} it must listen on 127.0.0.1 only (plain HTTP, no authentication)`);
    const upstream = arg(proxy, "--upstream");
    if (upstream !== `http://127.0.0.1:${hp.port}/`) errors.push(`[listen] ${PROXY} --upstream is ${upstream}, the agent listens on ${listen}`);
  } else {
    const cert = arg(agent, "--tls-cert-file") ?? config.tls?.cert_file;
    const key = arg(agent, "--tls-key-file") ?? config.tls?.key_file;
    if (!cert || !key) errors.push(`[listen] the agent listens on ${listen} without ${PROXY}: it must serve TLS (--tls-cert-file and --tls-key-file)`);
    const mounts = (agent.volumeMounts ?? []).map((m) => m.mountPath);
    for (const f of [cert, key].filter(Boolean)) if (!mounts.some((m) => f.startsWith(`${m}/`))) errors.push(`[listen] ${f} is not mounted`);
    const clientCA = arg(agent, "--tls-client-ca-file") ?? config.tls?.client_ca_file;
    if (cert && key && !clientCA && !byKind("NetworkPolicy").length) errors.push("[listen] TLS without client certificates lets anyone who reaches the port read it: add the NetworkPolicy (components/network-policy)");
  }

  // [kube-rbac-proxy] A pinned image, HTTPS on the metrics port, only the probes let through
  // unauthenticated, non-root, and the RBAC its reviews need.
  if (proxy) {
    const bad = [];
    if (!PROXY_IMAGE.test(proxy.image ?? "")) bad.push(`image ${proxy.image} must be quay.io/brancz/kube-rbac-proxy at a fixed version`);
    const secure = splitHostPort(arg(proxy, "--secure-listen-address") ?? "");
    if (!secure || secure.port !== METRICS_PORT) bad.push(`--secure-listen-address must serve port ${METRICS_PORT}`);
    if (arg(proxy, "--insecure-listen-address")) bad.push("no --insecure-listen-address");
    const ignored = (arg(proxy, "--ignore-paths") ?? "").split(",").filter(Boolean).sort();
    if (JSON.stringify(ignored) !== JSON.stringify(["/healthz", "/readyz"])) bad.push(`--ignore-paths must be exactly /healthz,/readyz (the probes), is ${JSON.stringify(ignored)}`);
    const sc = proxy.securityContext ?? {};
    if (sc.runAsNonRoot !== true || !(sc.runAsUser > 0)) bad.push("must run as a non-root uid");
    if (sc.allowPrivilegeEscalation !== false || sc.readOnlyRootFilesystem !== true || sc.privileged === true) bad.push("allowPrivilegeEscalation false, readOnlyRootFilesystem true, not privileged");
    if (JSON.stringify(sc.capabilities?.drop) !== '["ALL"]' || (sc.capabilities?.add ?? []).length) bad.push("capabilities: drop [ALL], add none");
    const r = proxy.resources ?? {};
    for (const k of ["cpu", "memory"]) {
      if (!(quantity(r.requests?.[k]) > 0) || !(quantity(r.limits?.[k]) >= quantity(r.requests?.[k]))) bad.push(`resources.${k}: a request and a limit at least as large`);
    }
    if (!allows(agentRules, "authentication.k8s.io", "tokenreviews", "create") || !allows(agentRules, "authorization.k8s.io", "subjectaccessreviews", "create")) {
      bad.push("the pod's service account must be allowed to create tokenreviews and subjectaccessreviews");
    }
    for (const b of bad) errors.push(`[kube-rbac-proxy] ${b}`);
  }
  for (const role of byKind("ClusterRole").filter((r) => r.metadata.name === "nodewarden-kube-rbac-proxy")) {
    const ok = (r) => r.verbs.every((v) => v === "create") && ((r.apiGroups?.[0] === "authentication.k8s.io" && r.resources?.every((x) => x === "tokenreviews")) || (r.apiGroups?.[0] === "authorization.k8s.io" && r.resources?.every((x) => x === "subjectaccessreviews")));
    if (!role.rules.every((r) => r.apiGroups?.length === 1 && ok(r))) errors.push("[kube-rbac-proxy] nodewarden-kube-rbac-proxy may only create tokenreviews and subjectaccessreviews");
  }
  for (const role of byKind("ClusterRole").filter((r) => r.metadata.name === "nodewarden-metrics-reader")) {
    if (JSON.stringify(role.rules) !== JSON.stringify([{ nonResourceURLs: ["/metrics", "/metrics/cadvisor"], verbs: ["get"] }])) errors.push("[kube-rbac-proxy] nodewarden-metrics-reader must allow get on /metrics and /metrics/cadvisor and nothing else");
  }

  // [monitor] Every scrape over HTTPS; through the proxy with a token of an identity allowed to
  // GET /metrics; to the agent's own TLS with its certificate verified.
  for (const m of [...byKind("ServiceMonitor"), ...byKind("PodMonitor")]) {
    const eps = m.spec.endpoints ?? m.spec.podMetricsEndpoints ?? [];
    if (!eps.length || !eps.every((e) => e.port === "metrics" && e.honorLabels === true)) {
      errors.push(`[monitor] ${m.kind} ${m.metadata.name}: every endpoint must scrape port metrics with honorLabels`);
    }
    for (const e of eps) {
      const id = `[monitor] ${m.kind} ${m.metadata.name}`;
      if (!["/metrics", "/metrics/cadvisor"].includes(e.path ?? "/metrics")) errors.push(`${id}: scrapes ${e.path}, which the agent does not serve as metrics`);
      if (e.scheme !== "https" || !e.tlsConfig) errors.push(`${id}: must scrape with scheme https and a tlsConfig`);
      const tokenFile = e.bearerTokenFile;
      const secretRef = e.authorization?.credentials ?? e.bearerTokenSecret;
      if (proxy) {
        if (!tokenFile && !secretRef) errors.push(`${id}: must send a bearer token (bearerTokenFile or authorization) to ${PROXY}`);
        if (e.authorization && (e.authorization.type ?? "Bearer") !== "Bearer") errors.push(`${id}: authorization type must be Bearer`);
        if (tokenFile && !boundTo(objects, "nodewarden-metrics-reader").length) errors.push(`${id}: no ClusterRoleBinding gives the Prometheus service account nodewarden-metrics-reader`);
        if (secretRef) {
          const secret = byKind("Secret").find((x) => x.metadata.name === secretRef.name && x.metadata.namespace === m.metadata.namespace);
          const sa = secret?.type === "kubernetes.io/service-account-token" ? secret.metadata.annotations?.["kubernetes.io/service-account.name"] : undefined;
          if (!sa) errors.push(`${id}: the token Secret ${secretRef.name} must be a rendered service-account-token Secret`);
          else if (!allowsURL(rulesOf(objects, m.metadata.namespace, sa), "/metrics")) errors.push(`${id}: the service account ${sa} may not GET /metrics`);
        }
      } else if (e.tlsConfig?.insecureSkipVerify || !e.tlsConfig?.ca) {
        errors.push(`${id}: the agent's own certificate must be verified (tlsConfig.ca, no insecureSkipVerify)`);
      }
    }
  }
  if (byKind("ServiceMonitor").length && byKind("PodMonitor").length) errors.push("[monitor] a ServiceMonitor and a PodMonitor would scrape every agent twice");

  // [kube-prometheus] A scrape of /metrics/cadvisor stands in for the kubelet's cAdvisor endpoint:
  // it must carry the labels every kubernetes-mixin rule selects (job="kubelet", metrics_path,
  // node), and the agent's /metrics scrape must not store the same container_* series again.
  const endpointsOf = (m) => m.spec.endpoints ?? m.spec.podMetricsEndpoints ?? [];
  const allEndpoints = [...byKind("ServiceMonitor"), ...byKind("PodMonitor")].flatMap(endpointsOf);
  const cadvisor = allEndpoints.filter((e) => e.path === "/metrics/cadvisor");
  for (const e of cadvisor) {
    const r = e.relabelings ?? [];
    const sets = (target, pred) => r.some((x) => x.targetLabel === target && (x.action ?? "replace") === "replace" && pred(x));
    if (!sets("job", (x) => x.replacement === "kubelet" && !x.sourceLabels)) errors.push('[kube-prometheus] the /metrics/cadvisor scrape must set job="kubelet"');
    if (!sets("metrics_path", (x) => JSON.stringify(x.sourceLabels) === '["__metrics_path__"]')) errors.push("[kube-prometheus] the /metrics/cadvisor scrape must set metrics_path from __metrics_path__");
    if (!sets("node", (x) => JSON.stringify(x.sourceLabels) === '["__meta_kubernetes_pod_node_name"]')) errors.push("[kube-prometheus] the /metrics/cadvisor scrape must set node from the pod's node");
  }
  if (cadvisor.length) {
    for (const e of allEndpoints.filter((x) => (x.path ?? "/metrics") === "/metrics")) {
      if (!(e.metricRelabelings ?? []).some((x) => x.action === "drop" && JSON.stringify(x.sourceLabels) === '["__name__"]' && x.regex === "(container|machine)_.*")) {
        errors.push("[kube-prometheus] the /metrics scrape must drop (container|machine)_.* when /metrics/cadvisor is scraped too (each series stored once)");
      }
    }
  }

  // [least privilege] No kubelet access in the agent's own role; nodes/proxy (every kubelet path,
  // /exec and /run included) only in the overlay that exists to grant it.
  for (const role of byKind("ClusterRole")) {
    const kubelet = (role.rules ?? []).flatMap((r) => (r.resources ?? []).filter((x) => x === "nodes/proxy" || x === "nodes/pods"));
    if (role.metadata.name === "nodewarden" && kubelet.length) errors.push(`[least privilege] ClusterRole nodewarden grants ${kubelet.join(", ")}: kubelet access is opt-in (overlays/kubelet)`);
    if (kubelet.includes("nodes/proxy") && variant !== "kubelet-nodes-proxy") errors.push(`[least privilege] ClusterRole ${role.metadata.name} grants nodes/proxy outside overlays/kubelet-nodes-proxy`);
  }

  // [sources] Each pod metadata source the config turns on has its RBAC, and no kubelet access
  // is granted that no source uses.
  const pods = config.collectors?.pods ?? {};
  const kubeletOn = pods.kubelet ?? BUILTIN.kubelet;
  const apiserverOn = pods.apiserver ?? BUILTIN.apiserver;
  const kubeletRBAC = allows(agentRules, "", "nodes/pods", "get") || allows(agentRules, "", "nodes/proxy", "get");
  if (kubeletOn && !allows(agentRules, "", "nodes/pods", "get")) errors.push("[sources] collectors.pods.kubelet is on but the agent may not get nodes/pods: every GET /pods would be a 403");
  if (!kubeletOn && kubeletRBAC) errors.push("[sources] the agent may get nodes/pods or nodes/proxy, but collectors.pods.kubelet is off");
  if (apiserverOn && !(allows(agentRules, "", "pods", "list") && allows(agentRules, "", "pods", "watch"))) errors.push("[sources] collectors.pods.apiserver is on but the agent may not list and watch pods");

  // [network policy] Only named peers reach the metrics port, nothing else is open.
  for (const np of byKind("NetworkPolicy")) {
    const id = `[network policy] ${np.metadata.name}`;
    if (np.spec.podSelector?.matchLabels?.["app.kubernetes.io/name"] !== "nodewarden") errors.push(`${id}: must select the agents' pods`);
    if (!(np.spec.policyTypes ?? []).includes("Ingress") || !(np.spec.policyTypes ?? []).includes("Egress")) errors.push(`${id}: policyTypes must be Ingress and Egress`);
    for (const rule of np.spec.ingress ?? []) {
      const peers = rule.from ?? [];
      if (!peers.length || !peers.every((p) => p.namespaceSelector && p.podSelector && !p.ipBlock)) errors.push(`${id}: every ingress peer must name a namespace and pods`);
      if (!(rule.ports ?? []).length || !rule.ports.every((p) => p.port === METRICS_PORT)) errors.push(`${id}: ingress only to port ${METRICS_PORT}`);
    }
    for (const rule of np.spec.egress ?? []) if (!(rule.ports ?? []).length) errors.push(`${id}: every egress rule must name its ports`);
  }
  return errors;
}

// ---- 3. PrometheusRule = deploy/prometheus/*-rules.yaml ------------------------------------

function ruleFileGroups() {
  const dir = join(deploy, "prometheus");
  const files = readdirSync(dir).filter((f) => f.endsWith("-rules.yaml")).sort();
  return files.flatMap((f) => parse(readFileSync(join(dir, f), "utf8")).groups);
}

// JSON with object keys sorted: kustomize writes keys in its own order.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  return JSON.stringify(v);
}

function prometheusRuleErrors(objects) {
  const errors = [];
  for (const pr of objects.filter((o) => o.kind === "PrometheusRule")) {
    if (canonical(pr.spec.groups) !== canonical(ruleFileGroups())) errors.push(`[prometheusrule] ${pr.metadata.name}: groups differ from deploy/prometheus/*-rules.yaml (run deploy/prometheus/make-prometheusrule.sh)`);
    const names = pr.spec.groups.map((g) => g.name);
    const dup = names.filter((n, i) => names.indexOf(n) !== i);
    if (dup.length) errors.push(`[prometheusrule] duplicate group names: ${dup.join(", ")}`);
  }
  return errors;
}

async function check(objects, variant) {
  const errors = [];
  for (const o of objects) errors.push(...(await schemaErrors(o)));
  errors.push(...policyErrors(objects, variant));
  errors.push(...prometheusRuleErrors(objects));
  return errors;
}

// ---- self-test -----------------------------------------------------------------------------

// Each mutation breaks one thing; `expect` is the text the report must contain.
const ds0 = (objs) => objs.find((o) => o.kind === "DaemonSet");
const c0 = (objs) => agentOf(ds0(objs));
const p0 = (objs) => proxyOf(ds0(objs));
const cm0 = (objs) => objs.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("nodewarden-config"));
const role = (objs, name) => objs.find((x) => x.kind === "ClusterRole" && x.metadata.name === name);
const setArg = (c, flag, value) => { const i = c.args.findIndex((x) => x.startsWith(`${flag}=`)); c.args[i] = `${flag}=${value}`; };
const mutations = [
  { name: "a host path mounted writable", expect: "[host paths read-only]", apply: (o) => { c0(o).volumeMounts.find((m) => m.name === "proc").readOnly = false; } },
  { name: "readOnly left out of a host mount", expect: "[host paths read-only]", apply: (o) => { delete c0(o).volumeMounts.find((m) => m.name === "pod-logs").readOnly; } },
  { name: "the state dir mounted read-only", expect: "[host paths read-only]", apply: (o) => { c0(o).volumeMounts.find((m) => m.mountPath === STATE_DIR).readOnly = true; } },
  { name: "the state dir not DirectoryOrCreate", expect: "[host paths read-only]", apply: (o) => { ds0(o).spec.template.spec.volumes.find((v) => v.name === "state").hostPath.type = "Directory"; } },
  { name: "the whole /run/containerd mounted", expect: "[no runtime sockets]", apply: (o) => { ds0(o).spec.template.spec.volumes.find((v) => v.name === "containerd-tasks").hostPath.path = "/run/containerd"; } },
  { name: "a capability added", expect: "[capabilities]", apply: (o) => { c0(o).securityContext.capabilities.add.push("SYS_ADMIN"); } },
  { name: "capabilities not dropped", expect: "[capabilities]", apply: (o) => { c0(o).securityContext.capabilities.drop = ["NET_RAW"]; } },
  { name: "privileged", expect: "[not privileged]", apply: (o) => { c0(o).securityContext.privileged = true; } },
  { name: "privilege escalation allowed", expect: "[not privileged]", apply: (o) => { delete c0(o).securityContext.allowPrivilegeEscalation; } },
  { name: "writable root filesystem (misspelt field)", expect: "[not privileged]", apply: (o) => { const sc = c0(o).securityContext; sc.readOnlyRootFileSystem = true; delete sc.readOnlyRootFilesystem; } },
  { name: "no seccomp profile", expect: "[seccomp]", apply: (o) => { delete c0(o).securityContext.seccompProfile; delete ds0(o).spec.template.spec.securityContext.seccompProfile; } },
  { name: "hostNetwork", expect: "[host namespaces]", apply: (o) => { ds0(o).spec.template.spec.hostNetwork = true; } },
  { name: "no hostPID", expect: "[host namespaces]", apply: (o) => { ds0(o).spec.template.spec.hostPID = false; } },
  { name: "no liveness probe", expect: "[probes]", apply: (o) => { delete c0(o).livenessProbe; } },
  { name: "readiness on /healthz", expect: "[probes]", apply: (o) => { c0(o).readinessProbe.httpGet.path = "/healthz"; } },
  { name: "no memory limit", expect: "[resources]", apply: (o) => { delete c0(o).resources.limits.memory; } },
  { name: "request above limit", expect: "[resources]", apply: (o) => { c0(o).resources.requests.cpu = "2"; } },
  { name: "no tolerations", expect: "[tolerate everything]", apply: (o) => { ds0(o).spec.template.spec.tolerations = [{ key: "node-role.kubernetes.io/control-plane", operator: "Exists" }]; } },
  { name: "maxUnavailable 1", expect: "[rolling update 10%]", apply: (o) => { ds0(o).spec.updateStrategy.rollingUpdate.maxUnavailable = 1; } },
  { name: "no priority class", expect: "[priority class]", apply: (o) => { delete ds0(o).spec.template.spec.priorityClassName; } },
  { name: "NODE_IP from the pod IP", expect: "[downward API env]", apply: (o) => { c0(o).env.find((e) => e.name === "NODE_IP").valueFrom.fieldRef.fieldPath = "status.podIP"; } },
  { name: "an unmounted --proc-root", expect: "[paths are mounted]", apply: (o) => { const a = c0(o).args; a[a.findIndex((x) => x.startsWith("--proc-root"))] = "--proc-root=/hostproc"; } },
  { name: "metrics port renamed", expect: "[metrics port]", apply: (o) => { p0(o).ports[0].name = "http"; } },
  { name: "a schema error (port as a string)", expect: "schema:", apply: (o) => { p0(o).ports[0].containerPort = "9465"; } },
  { name: "a third container", expect: "[containers]", apply: (o) => { ds0(o).spec.template.spec.containers.push({ name: "debug", image: "busybox" }); } },
  { name: "the agent's port on the pod IP beside the proxy", expect: "[metrics port]", apply: (o) => { c0(o).ports = [{ name: "plain", containerPort: 9466 }]; } },
  { name: "a probe over plain HTTP", expect: "[probes]", apply: (o) => { delete c0(o).livenessProbe.httpGet.scheme; } },
  { name: "the agent on 0.0.0.0 behind the proxy", expect: "[listen]", apply: (o) => { setArg(c0(o), "--listen", "0.0.0.0:9465"); } },
  { name: "no --listen: the config's default 0.0.0.0", expect: "[listen]", apply: (o) => { c0(o).args = c0(o).args.filter((a) => !a.startsWith("--listen")); } },
  { name: "the proxy's upstream elsewhere", expect: "[listen]", apply: (o) => { setArg(p0(o), "--upstream", "http://127.0.0.1:9999/"); } },
  { name: "the proxy removed, the agent on plain HTTP", expect: "[listen]", apply: (o) => { ds0(o).spec.template.spec.containers.pop(); setArg(c0(o), "--listen", "0.0.0.0:9465"); c0(o).ports = [{ name: "metrics", containerPort: 9465 }]; } },
  { name: "agent-tls without its key", expect: "[listen]", variant: "agent-tls", apply: (o) => { c0(o).args = c0(o).args.filter((a) => !a.startsWith("--tls-key-file")); } },
  { name: "agent-tls without a NetworkPolicy", expect: "[listen]", variant: "agent-tls", apply: (o) => { o.splice(o.findIndex((x) => x.kind === "NetworkPolicy"), 1); } },
  { name: "the proxy image unpinned", expect: "[kube-rbac-proxy]", apply: (o) => { p0(o).image = "quay.io/brancz/kube-rbac-proxy:latest"; } },
  { name: "the proxy letting /metrics through", expect: "[kube-rbac-proxy]", apply: (o) => { setArg(p0(o), "--ignore-paths", "/healthz,/readyz,/metrics"); } },
  { name: "the proxy as root", expect: "[kube-rbac-proxy]", apply: (o) => { p0(o).securityContext.runAsUser = 0; } },
  { name: "the proxy without subjectaccessreviews", expect: "[kube-rbac-proxy]", apply: (o) => { role(o, "nodewarden-kube-rbac-proxy").rules.pop(); } },
  { name: "the proxy's role widened", expect: "[kube-rbac-proxy]", apply: (o) => { role(o, "nodewarden-kube-rbac-proxy").rules.push({ apiGroups: [""], resources: ["pods"], verbs: ["create"] }); } },
  { name: "the metrics reader widened to /signals", expect: "[kube-rbac-proxy]", apply: (o) => { role(o, "nodewarden-metrics-reader").rules[0].nonResourceURLs.push("/signals"); } },
  { name: "a ServiceMonitor over http", expect: "[monitor]", variant: "metrics-only", apply: (o) => { o.find((x) => x.kind === "ServiceMonitor").spec.endpoints[0].scheme = "http"; } },
  { name: "a ServiceMonitor without a token", expect: "[monitor]", variant: "metrics-only", apply: (o) => { delete o.find((x) => x.kind === "ServiceMonitor").spec.endpoints[0].bearerTokenFile; } },
  { name: "a ServiceMonitor whose Prometheus is not bound", expect: "[monitor]", variant: "metrics-only", apply: (o) => { o.splice(o.findIndex((x) => x.kind === "ClusterRoleBinding" && x.metadata.name === "nodewarden-metrics-reader"), 1); } },
  { name: "a PodMonitor without a token", expect: "[monitor]", variant: "podmonitor", apply: (o) => { delete o.find((x) => x.kind === "PodMonitor").spec.podMetricsEndpoints[0].authorization; } },
  { name: "a PodMonitor scraper not allowed /metrics", expect: "[monitor]", variant: "podmonitor", apply: (o) => { o.find((x) => x.kind === "ClusterRoleBinding" && x.metadata.name === "nodewarden-scraper").roleRef.name = "view"; } },
  { name: "agent-tls monitor skipping verification", expect: "[monitor]", variant: "agent-tls", apply: (o) => { o.find((x) => x.kind === "ServiceMonitor").spec.endpoints[0].tlsConfig = { insecureSkipVerify: true }; } },
  { name: "nodes/proxy back in the base role", expect: "[least privilege]", apply: (o) => { role(o, "nodewarden").rules.push({ apiGroups: [""], resources: ["nodes/proxy", "nodes/pods"], verbs: ["get"] }); } },
  { name: "nodes/proxy in the nodes/pods overlay", expect: "[least privilege]", variant: "kubelet", apply: (o) => { role(o, "nodewarden-kubelet").rules[0].resources.push("nodes/proxy"); } },
  { name: "the kubelet source on without RBAC", expect: "[sources]", apply: (o) => { cm0(o).data["nodewarden.yaml"] = cm0(o).data["nodewarden.yaml"].replace(/^( *)kubelet: false$/m, "$1kubelet: true"); } },
  { name: "the kubelet source on by default in an overlay's config", expect: "[sources]", variant: "metrics-only", apply: (o) => { cm0(o).data["nodewarden.yaml"] = "collectors:\n  logs:\n    enabled: false\n"; } },
  { name: "kubelet RBAC with the source off", expect: "[sources]", variant: "kubelet", apply: (o) => { cm0(o).data["nodewarden.yaml"] = "collectors:\n  pods:\n    kubelet: false\n"; } },
  { name: "a NetworkPolicy open to every pod", expect: "[network policy]", variant: "network-policy", apply: (o) => { o.find((x) => x.kind === "NetworkPolicy").spec.ingress[0].from = [{ namespaceSelector: {} }]; } },
  { name: "a NetworkPolicy opening another port", expect: "[network policy]", variant: "network-policy", apply: (o) => { o.find((x) => x.kind === "NetworkPolicy").spec.ingress[0].ports.push({ port: 22, protocol: "TCP" }); } },
  { name: "a kind with no schema", expect: "no schema for", apply: (o) => { o.push({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } }); } },
  { name: "a non-generated ConfigMap", expect: "[config map]", apply: (o) => { const cm = o.find((x) => x.kind === "ConfigMap"); const v = ds0(o).spec.template.spec.volumes.find((x) => x.name === "config"); cm.metadata.name = "nodewarden-config"; v.configMap.name = "nodewarden-config"; } },
  { name: "namespace not privileged", expect: "[namespace]", apply: (o) => { o.find((x) => x.kind === "Namespace").metadata.labels["pod-security.kubernetes.io/enforce"] = "baseline"; } },
  { name: "a writing verb in the agent's role", expect: "[rbac]", apply: (o) => { o.find((x) => x.kind === "ClusterRole" && x.metadata.name === "nodewarden").rules[0].verbs.push("delete"); } },
  { name: "a Service with a cluster IP", expect: "[service]", apply: (o) => { o.find((x) => x.kind === "Service").spec.clusterIP = "10.0.0.10"; } },
  { name: "a ServiceMonitor without honorLabels", expect: "[monitor]", variant: "metrics-only", apply: (o) => { o.find((x) => x.kind === "ServiceMonitor").spec.endpoints[0].honorLabels = false; } },
  { name: "a monitor scraping a path the agent does not serve", expect: "[monitor]", variant: "metrics-only", apply: (o) => { o.find((x) => x.kind === "ServiceMonitor").spec.endpoints[0].path = "/signals"; } },
  { name: "the cAdvisor scrape without job=kubelet", expect: "[kube-prometheus]", variant: "kube-prometheus", apply: (o) => { const e = o.find((x) => x.kind === "ServiceMonitor" && x.metadata.name === "nodewarden-cadvisor").spec.endpoints[0]; e.relabelings = e.relabelings.filter((x) => x.targetLabel !== "job"); } },
  { name: "the cAdvisor scrape without node", expect: "[kube-prometheus]", variant: "kube-prometheus", apply: (o) => { const e = o.find((x) => x.kind === "ServiceMonitor" && x.metadata.name === "nodewarden-cadvisor").spec.endpoints[0]; e.relabelings = e.relabelings.filter((x) => x.targetLabel !== "node"); } },
  { name: "container_* stored twice beside the cAdvisor scrape", expect: "[kube-prometheus]", variant: "kube-prometheus", apply: (o) => { delete o.find((x) => x.kind === "ServiceMonitor" && x.metadata.name === "nodewarden").spec.endpoints[0].metricRelabelings; } },
  { name: "a PrometheusRule that lost an alert", expect: "[prometheusrule]", variant: "metrics-only", apply: (o) => { o.find((x) => x.kind === "PrometheusRule").spec.groups[0].rules.pop(); } },
];

async function selfTest(rendered) {
  let failed = 0;
  for (const m of mutations) {
    const variant = m.variant ?? "default";
    const objects = structuredClone(rendered.get(variant));
    m.apply(objects);
    const errors = await check(objects, variant);
    const caught = errors.some((e) => e.includes(m.expect));
    console.log(`${caught ? "caught" : "MISSED"}: ${m.name}${caught ? "" : ` (wanted "${m.expect}", got ${JSON.stringify(errors)})`}`);
    if (!caught) failed++;
  }
  console.log(failed ? `self-test: ${failed} of ${mutations.length} breaks went unnoticed` : `self-test: all ${mutations.length} breaks caught`);
  return failed === 0;
}

// ---- main ----------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const rendered = new Map();
for (const v of variants()) rendered.set(v.name, render(v.dir));

if (argv[0] === "--self-test") {
  // The unbroken objects must pass first, or a "caught" would prove nothing.
  for (const [name, objects] of rendered) {
    const errors = await check(objects, name);
    if (errors.length) {
      console.error(`self-test: ${name} fails before any break:\n  ${errors.join("\n  ")}`);
      process.exit(1);
    }
  }
  process.exit((await selfTest(rendered)) ? 0 : 1);
}

let failed = false;
for (const [name, objects] of rendered) {
  const errors = await check(objects, name);
  const kinds = objects.map((o) => o.kind).join(", ");
  if (errors.length) {
    failed = true;
    console.error(`FAIL ${name}:\n  ${errors.join("\n  ")}`);
  } else {
    console.log(`ok ${name}: ${objects.length} objects (${kinds})`);
  }
}
const configsAt = argv.indexOf("--configs");
if (configsAt >= 0) {
  const dir = argv[configsAt + 1];
  mkdirSync(dir, { recursive: true });
  for (const [name, objects] of rendered) {
    const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.startsWith("nodewarden-config"));
    if (cm) writeFileSync(join(dir, `${name}.yaml`), cm.data["nodewarden.yaml"]);
  }
}
process.exit(failed ? 1 : 0);

// Validates what deploy/kubernetes renders to, for the base and every overlay:
//   1. every object against its schema: Kubernetes (kubernetes-models) and Prometheus Operator
//      (@kubernetes-models/prometheus-operator); an apiVersion/kind with no model fails;
//   2. nodewarden's policy for its DaemonSet (read-only host paths but the state dir, capabilities,
//      no privilege, probes, resources, tolerations, ...), the Service, the ConfigMap reference
//      and the Prometheus Operator objects;
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

// Each check returns a message when the object breaks it. Names are what --self-test refers to.
const daemonSetChecks = {
  "single container": (ds) => (ds.spec?.template?.spec?.containers?.length === 1 ? null : "the DaemonSet must have exactly one container"),
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
  "no host namespaces": (ds) => {
    const s = ds.spec.template.spec;
    const on = ["hostNetwork", "hostPID", "hostIPC"].filter((k) => s[k] === true);
    return on.length ? `${on.join(", ")} must not be true` : null;
  },
  "service account": (ds) => (ds.spec.template.spec.serviceAccountName === "nodewarden" ? null : "serviceAccountName must be nodewarden"),
  "termination grace": (ds) => {
    const g = ds.spec.template.spec.terminationGracePeriodSeconds;
    return typeof g === "number" && g >= 15 ? null : "terminationGracePeriodSeconds must be set, at least 15 (the spool flush and one HTTP push)";
  },
  "not privileged": (ds) => {
    const sc = ds.spec.template.spec.containers[0].securityContext ?? {};
    const bad = [];
    if (sc.privileged !== false) bad.push("privileged must be false");
    if (sc.allowPrivilegeEscalation !== false) bad.push("allowPrivilegeEscalation must be false");
    if (sc.readOnlyRootFilesystem !== true) bad.push("readOnlyRootFilesystem must be true");
    return bad.length ? bad.join("; ") : null;
  },
  "capabilities": (ds) => {
    const caps = ds.spec.template.spec.containers[0].securityContext?.capabilities ?? {};
    const drop = caps.drop ?? [];
    const add = caps.add ?? [];
    if (!(drop.length === 1 && drop[0] === "ALL")) return `capabilities.drop must be [ALL], is ${JSON.stringify(drop)}`;
    if (!(add.length === 1 && add[0] === "DAC_READ_SEARCH")) return `capabilities.add must be [DAC_READ_SEARCH] only, is ${JSON.stringify(add)}`;
    return null;
  },
  "seccomp": (ds) => {
    const pod = ds.spec.template.spec.securityContext?.seccompProfile?.type;
    const c = ds.spec.template.spec.containers[0].securityContext?.seccompProfile?.type;
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
    const c = ds.spec.template.spec.containers[0];
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
    const env = ds.spec.template.spec.containers[0].env ?? [];
    const field = (n) => env.find((e) => e.name === n)?.valueFrom?.fieldRef?.fieldPath;
    const bad = [];
    if (field("NODE_NAME") !== "spec.nodeName") bad.push("NODE_NAME must come from spec.nodeName");
    if (field("NODE_IP") !== "status.hostIP") bad.push("NODE_IP must come from status.hostIP");
    return bad.length ? bad.join("; ") : null;
  },
  "metrics port": (ds) => {
    const ports = ds.spec.template.spec.containers[0].ports ?? [];
    return ports.some((p) => p.name === "metrics" && p.containerPort === 9465) ? null : "a container port named metrics, 9465";
  },
  "probes": (ds) => {
    const c = ds.spec.template.spec.containers[0];
    const bad = [];
    if (c.livenessProbe?.httpGet?.path !== "/healthz" || c.livenessProbe?.httpGet?.port !== "metrics") bad.push("livenessProbe must be GET /healthz on port metrics");
    if (c.readinessProbe?.httpGet?.path !== "/readyz" || c.readinessProbe?.httpGet?.port !== "metrics") bad.push("readinessProbe must be GET /readyz on port metrics");
    return bad.length ? bad.join("; ") : null;
  },
  "resources": (ds) => {
    const r = ds.spec.template.spec.containers[0].resources ?? {};
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
    if ((role.rules ?? []).some((r) => r.verbs.includes("*") || r.resources.includes("*") || (r.resources.includes("secrets")))) errors.push(`[rbac] ${role.metadata.name}: no wildcards, no secrets`);
  }
  for (const m of [...byKind("ServiceMonitor"), ...byKind("PodMonitor")]) {
    const eps = m.spec.endpoints ?? m.spec.podMetricsEndpoints ?? [];
    if (!eps.length || !eps.every((e) => e.port === "metrics" && e.honorLabels === true)) {
      errors.push(`[monitor] ${m.kind} ${m.metadata.name}: every endpoint must scrape port metrics with honorLabels`);
    }
  }
  if (byKind("ServiceMonitor").length && byKind("PodMonitor").length) errors.push("[monitor] a ServiceMonitor and a PodMonitor would scrape every agent twice");
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
const c0 = (objs) => ds0(objs).spec.template.spec.containers[0];
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
  { name: "hostPID", expect: "[no host namespaces]", apply: (o) => { ds0(o).spec.template.spec.hostPID = true; } },
  { name: "no liveness probe", expect: "[probes]", apply: (o) => { delete c0(o).livenessProbe; } },
  { name: "readiness on /healthz", expect: "[probes]", apply: (o) => { c0(o).readinessProbe.httpGet.path = "/healthz"; } },
  { name: "no memory limit", expect: "[resources]", apply: (o) => { delete c0(o).resources.limits.memory; } },
  { name: "request above limit", expect: "[resources]", apply: (o) => { c0(o).resources.requests.cpu = "2"; } },
  { name: "no tolerations", expect: "[tolerate everything]", apply: (o) => { ds0(o).spec.template.spec.tolerations = [{ key: "node-role.kubernetes.io/control-plane", operator: "Exists" }]; } },
  { name: "maxUnavailable 1", expect: "[rolling update 10%]", apply: (o) => { ds0(o).spec.updateStrategy.rollingUpdate.maxUnavailable = 1; } },
  { name: "no priority class", expect: "[priority class]", apply: (o) => { delete ds0(o).spec.template.spec.priorityClassName; } },
  { name: "NODE_IP from the pod IP", expect: "[downward API env]", apply: (o) => { c0(o).env.find((e) => e.name === "NODE_IP").valueFrom.fieldRef.fieldPath = "status.podIP"; } },
  { name: "an unmounted --proc-root", expect: "[paths are mounted]", apply: (o) => { const a = c0(o).args; a[a.findIndex((x) => x.startsWith("--proc-root"))] = "--proc-root=/hostproc"; } },
  { name: "metrics port renamed", expect: "[metrics port]", apply: (o) => { c0(o).ports[0].name = "http"; } },
  { name: "a schema error (port as a string)", expect: "schema:", apply: (o) => { c0(o).ports[0].containerPort = "9465"; } },
  { name: "a kind with no schema", expect: "no schema for", apply: (o) => { o.push({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } }); } },
  { name: "a non-generated ConfigMap", expect: "[config map]", apply: (o) => { const cm = o.find((x) => x.kind === "ConfigMap"); const v = ds0(o).spec.template.spec.volumes.find((x) => x.name === "config"); cm.metadata.name = "nodewarden-config"; v.configMap.name = "nodewarden-config"; } },
  { name: "namespace not privileged", expect: "[namespace]", apply: (o) => { o.find((x) => x.kind === "Namespace").metadata.labels["pod-security.kubernetes.io/enforce"] = "baseline"; } },
  { name: "a writing verb in the agent's role", expect: "[rbac]", apply: (o) => { o.find((x) => x.kind === "ClusterRole" && x.metadata.name === "nodewarden").rules[0].verbs.push("delete"); } },
  { name: "a Service with a cluster IP", expect: "[service]", apply: (o) => { o.find((x) => x.kind === "Service").spec.clusterIP = "10.0.0.10"; } },
  { name: "a ServiceMonitor without honorLabels", expect: "[monitor]", variant: "metrics-only", apply: (o) => { o.find((x) => x.kind === "ServiceMonitor").spec.endpoints[0].honorLabels = false; } },
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

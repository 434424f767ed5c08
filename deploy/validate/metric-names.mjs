// Every metric name the rule files (deploy/prometheus/*.yaml) and the dashboards
// (deploy/grafana/*.json) use must be one the agent exposes.
//
//   node metric-names.mjs --scrape FILE [--scrape FILE ...] [--source DIR ...]
//   node metric-names.mjs --self-test
//
// Known names: the families a running agent announced (# HELP / # TYPE lines of the scrapes,
// with _bucket/_sum/_count of histograms and summaries), the rule files' recording rules, and
// what Prometheus makes itself (up, scrape_*). Some families are announced only once they have
// a sample (the Job outcome series before the first Job pod ends, nodewarden_errors_total
// before the first error, the cAdvisor-compatible io series of a node without io): a name the
// scrape lacks is accepted when it is a family name in the agent's source (--source: a string
// literal "name" in a .cpp file), and listed as such. Anything else fails, listed with where it
// is used.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, resolve, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");

const KEYWORDS = new Set(["and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "atan2", "inf", "nan", "Inf", "NaN"]);
const PROMETHEUS_MADE = /^(up|scrape_duration_seconds|scrape_samples_scraped|scrape_samples_post_metric_relabeling|scrape_series_added|ALERTS|ALERTS_FOR_STATE)$/;

// Metric names in one PromQL expression (also Grafana's: $variables, ${variables},
// [$__rate_interval]). Strings, label matchers, ranges and grouping label lists are removed
// first; an identifier followed by "(" is a function or aggregation.
export function metricNames(expr) {
  let e = expr
    .replace(/#[^\n]*/g, " ")
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\$\{[^}]*\}|\$[A-Za-z_]\w*/g, " ")
    .replace(/\{[^{}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names = new Set();
  const token = /([A-Za-z_:][A-Za-z0-9_:]*)|(\d[0-9A-Za-z_.]*)|(\S)/g;
  let m;
  while ((m = token.exec(e))) {
    if (!m[1]) continue;
    const rest = e.slice(token.lastIndex);
    if (/^\s*\(/.test(rest)) continue; // a call
    if (KEYWORDS.has(m[1])) continue;
    names.add(m[1]);
  }
  return names;
}

// Grafana variable queries: label_values(metric, label), metrics(), query_result(expr).
function variableQueryExprs(q) {
  const text = typeof q === "string" ? q : q?.query ?? "";
  const lv = /label_values\(\s*([^,]+?)\s*,/.exec(text) ?? /label_values\(\s*([^)]+?)\s*\)/.exec(text);
  if (lv) return [lv[1]];
  const qr = /query_result\((.*)\)\s*$/s.exec(text);
  if (qr) return [qr[1]];
  return [];
}

function collectDashboardExprs(node, out, where) {
  if (Array.isArray(node)) node.forEach((n, i) => collectDashboardExprs(n, out, where));
  else if (node && typeof node === "object") {
    if (typeof node.expr === "string") out.push({ where: `${where}: ${node.title ?? node.refId ?? "target"}`, expr: node.expr });
    if (node.type === "query" && node.query) for (const e of variableQueryExprs(node.query)) out.push({ where: `${where}: variable ${node.name}`, expr: e });
    for (const [k, v] of Object.entries(node)) {
      if (k === "targets" && Array.isArray(v)) v.forEach((t) => typeof t.expr === "string" && out.push({ where: `${where}: panel "${node.title}"`, expr: t.expr }));
      else if (k !== "targets") collectDashboardExprs(v, out, where);
    }
  }
}

function usages() {
  const uses = [];
  const recorded = new Set();
  const promDir = join(repo, "deploy/prometheus");
  for (const f of readdirSync(promDir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const doc = parse(readFileSync(join(promDir, f), "utf8"));
    for (const g of doc?.groups ?? []) {
      for (const r of g.rules ?? []) {
        if (r.record) recorded.add(r.record);
        uses.push({ where: `deploy/prometheus/${f}: ${r.record ?? r.alert}`, expr: String(r.expr) });
      }
    }
  }
  const grafanaDir = join(repo, "deploy/grafana");
  for (const f of readdirSync(grafanaDir).filter((f) => f.endsWith(".json")).sort()) {
    const dash = JSON.parse(readFileSync(join(grafanaDir, f), "utf8"));
    const out = [];
    collectDashboardExprs(dash.panels ?? [], out, `deploy/grafana/${f}`);
    collectDashboardExprs(dash.templating ?? {}, out, `deploy/grafana/${f}`);
    // Each target once.
    const seen = new Set();
    for (const u of out) if (!seen.has(u.where + u.expr)) { seen.add(u.where + u.expr); uses.push(u); }
  }
  return { uses, recorded };
}

// # HELP / # TYPE names of a scrape, and which are histograms or summaries.
function announced(texts) {
  const names = new Set();
  const composite = new Set();
  for (const t of texts) {
    for (const line of t.split("\n")) {
      const m = /^# (HELP|TYPE) ([A-Za-z_:][A-Za-z0-9_:]*)(?: (\S+))?/.exec(line);
      if (!m) continue;
      names.add(m[2]);
      if (m[1] === "TYPE" && (m[3] === "histogram" || m[3] === "summary")) composite.add(m[2]);
    }
  }
  return { names, composite };
}

function sourceFamilies(dirs) {
  const names = new Map();
  const walk = (d) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(cpp|h)$/.test(e)) {
        for (const m of readFileSync(p, "utf8").matchAll(/"((?:nodewarden|container|node)_[a-z0-9_]+)"/g)) if (!names.has(m[1])) names.set(m[1], relative(repo, p));
      }
    }
  };
  dirs.forEach(walk);
  return names;
}

function known(name, live, recorded) {
  if (live.names.has(name) || recorded.has(name) || PROMETHEUS_MADE.test(name)) return true;
  const base = name.replace(/_(bucket|sum|count)$/, "");
  return base !== name && live.composite.has(base);
}

function selfTest() {
  const cases = [
    ['sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!="", node=~"$node"}[$__rate_interval]))', ["container_cpu_usage_seconds_total"]],
    ['a_total unless on (x) b offset 15m > 0 and bool c:rec:ratio', ["a_total", "b", "c:rec:ratio"]],
    ['histogram_quantile(0.9, sum by (le) (rate(d_bucket[1h]))) * 1e3', ["d_bucket"]],
    ['label_replace(x, "dst", "$1", "src", "(.*)") or vector(0)', ["x"]],
    ['max(y) by (node) / on (node) group_left (a, b) z # comment with w_total', ["y", "z"]],
    ['up{job="nodewarden"} == 0', ["up"]],
  ];
  let ok = true;
  for (const [expr, want] of cases) {
    const got = [...metricNames(expr)].sort();
    const pass = JSON.stringify(got) === JSON.stringify([...want].sort());
    if (!pass) ok = false;
    console.log(`${pass ? "ok" : "FAIL"}: ${expr} -> ${got.join(", ")}`);
  }
  const live = announced(["# HELP h a\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# HELP g b\n# TYPE g gauge\n"]);
  for (const [n, want] of [["h_bucket", true], ["h_count", true], ["g", true], ["g_sum", false], ["nope", false], ["up", true]]) {
    const got = known(n, live, new Set());
    if (got !== want) ok = false;
    console.log(`${got === want ? "ok" : "FAIL"}: known(${n}) = ${got}`);
  }
  console.log(ok ? "self-test: ok" : "self-test: FAILED");
  return ok;
}

const argv = process.argv.slice(2);
if (argv[0] === "--self-test") process.exit(selfTest() ? 0 : 1);

const scrapes = [];
const sources = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--scrape") scrapes.push(readFileSync(argv[++i], "utf8"));
  else if (argv[i] === "--source") sources.push(resolve(argv[++i]));
  else { console.error(`metric-names.mjs: unknown argument ${argv[i]}`); process.exit(2); }
}
if (!scrapes.length) { console.error("metric-names.mjs: give at least one --scrape FILE"); process.exit(2); }

const live = announced(scrapes);
const declared = sourceFamilies(sources);
const { uses, recorded } = usages();
const unknown = new Map();
const onlyDeclared = new Map();
let count = 0;
for (const u of uses) {
  for (const n of metricNames(u.expr)) {
    count++;
    if (known(n, live, recorded)) continue;
    const base = n.replace(/_(bucket|sum|count)$/, "");
    const target = declared.has(n) ? onlyDeclared : declared.has(base) && base !== n ? onlyDeclared : unknown;
    if (!target.has(n)) target.set(n, []);
    target.get(n).push(u.where);
  }
}
console.log(`metric-names: ${uses.length} expressions, ${count} name uses; the agent announced ${live.names.size} families; ${recorded.size} recording rules`);
for (const [n, where] of [...onlyDeclared].sort()) {
  console.log(`  not in the scrape (no sample there), declared in ${declared.get(n) ?? declared.get(n.replace(/_(bucket|sum|count)$/, ""))}: ${n} (${where.length} uses)`);
}
if (unknown.size) {
  console.error(`metric-names: ${unknown.size} names the agent does not expose:`);
  for (const [n, where] of [...unknown].sort()) console.error(`  ${n}: ${[...new Set(where)].join("; ")}`);
  process.exit(1);
}
console.log("metric-names: every name is exposed by the agent, recorded by a rule, or made by Prometheus");

/**
 * Cross-checks of deploy/: the Kubernetes manifests agree with each other, with Iris's flags and
 * with the Dockerfile. Nothing here needs a cluster or a Docker engine; the files are parsed.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { builtinModelPath } from '../../src/cli/builtinModel.js';
import { playgroundDir } from '../../src/server/playground.js';
import { SGLANG_METRIC_NAMES } from '../../src/server/sglangMetrics.js';
import { projectRoot } from '../helpers/paths.js';

/**
 * The Prometheus metrics Iris exports under SGLang's names (each labelled model_name; the server
 * tests check a live /metrics has each). The endpoint picker may only be told to read these.
 */
const EXPORTED_METRICS: readonly string[] = SGLANG_METRIC_NAMES;

/** What `iris serve` does after the grace period: aborts what is left, then waits up to 2 s (src/cli/serve.ts). */
const SERVER_ABORT_SECONDS = 2;

const POOL_GROUP = 'inference.networking.k8s.io';
const K8S_DIR = join(projectRoot, 'deploy', 'k8s');
const DOCKERFILE = join(projectRoot, 'deploy', 'Dockerfile');

// ---- loading ---------------------------------------------------------------------------------

// Manifests are untyped YAML; these aliases only name what a value is expected to hold.
type Obj = Record<string, any>;

interface Doc {
  file: string;
  obj: Obj;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return yamlFiles(p);
      return /\.ya?ml$/.test(name) ? [p] : [];
    })
    .sort();
}

function loadDocs(): Doc[] {
  const docs: Doc[] = [];
  for (const path of yamlFiles(K8S_DIR)) {
    for (const d of parseAllDocuments(readFileSync(path, 'utf8'))) {
      const file = relative(K8S_DIR, path);
      assert.deepEqual(d.errors.map((e) => e.message), [], `${file}: YAML errors`);
      const obj = d.toJS() as Obj | null;
      if (obj !== null) docs.push({ file, obj });
    }
  }
  return docs;
}

const docs = loadDocs();

function ofKind(kind: string): Obj[] {
  return docs.filter((d) => d.obj.kind === kind).map((d) => d.obj);
}

function one(kind: string, name: string): Obj {
  const found = ofKind(kind).filter((o) => o.metadata?.name === name);
  assert.equal(found.length, 1, `exactly one ${kind} named ${name}`);
  return found[0]!;
}

// The objects most checks start from; found when a test asks, so that a missing one fails
// the tests that need it rather than the whole file.
function pool(): Obj {
  const pools = ofKind('InferencePool');
  assert.equal(pools.length, 1, 'one InferencePool');
  return pools[0]!;
}

/** True if every label of `selector` is on `labels`. */
function selects(selector: Obj | undefined, labels: Obj | undefined): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([k, v]) => labels?.[k] === v);
}

/** The Deployments whose pods the InferencePool selects: the model servers. */
function modelServer(): Obj {
  const found = ofKind('Deployment').filter((d) => selects(pool().spec?.selector?.matchLabels, d.spec?.template?.metadata?.labels));
  assert.equal(found.length, 1, 'the InferencePool selects the pods of exactly one Deployment');
  return found[0]!;
}

function irisContainer(): Obj {
  const containers: Obj[] = modelServer().spec.template.spec.containers;
  assert.equal(containers.length, 1, 'the model server pod has one container');
  return containers[0]!;
}

/** The value of a flag in an argument list: `--flag value` or `--flag=value`. */
function argValue(args: string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i]!.startsWith(`${flag}=`)) return args[i]!.slice(flag.length + 1);
  }
  return undefined;
}

function irisArgs(): string[] {
  const c = irisContainer();
  return [...(c.command ?? []), ...(c.args ?? [])].map(String);
}

function numberArg(flag: string): number {
  const v = argValue(irisArgs(), flag);
  assert.ok(v !== undefined, `the model server is started with ${flag}`);
  const n = Number(v);
  assert.ok(Number.isFinite(n), `${flag} ${v} is a number`);
  return n;
}

/** A port given by number or by the name of one of the container's ports. */
function resolvePort(port: number | string, container: Obj): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = (container.ports ?? []).find((p: Obj) => p.name === port);
  assert.ok(named, `port name ${port} is one of the container's ports`);
  return named.containerPort;
}

function containerPort(): number {
  const ports: Obj[] = irisContainer().ports ?? [];
  assert.equal(ports.length, 1, 'the model server container exposes one port');
  return ports[0]!.containerPort as number;
}

/** Seconds a preStop hook waits: an exec `sleep N`, or the kubelet's own sleep action. */
function preStopSeconds(container: Obj): number {
  const hook = container.lifecycle?.preStop;
  if (!hook) return 0;
  if (hook.sleep) return Number(hook.sleep.seconds);
  const cmd: string[] = (hook.exec?.command ?? []).map(String);
  const sleep = cmd.join(' ').match(/(?:^|[\s;&])sleep\s+(\d+(?:\.\d+)?)/);
  assert.ok(sleep, `preStop ${JSON.stringify(cmd)} is a sleep`);
  return Number(sleep[1]);
}

function eppConfig(): { config: Obj; configMap: Obj; key: string } {
  for (const cm of ofKind('ConfigMap')) {
    for (const [key, text] of Object.entries<string>(cm.data ?? {})) {
      const config = parseYaml(text) as Obj;
      if (config?.kind === 'EndpointPickerConfig') return { config, configMap: cm, key };
    }
  }
  assert.fail('a ConfigMap holds an EndpointPickerConfig');
}

/** The Deployment of the endpoint picker: the one started with --pool-name. */
function eppDeployment(): { deployment: Obj; container: Obj; args: string[] } {
  for (const d of ofKind('Deployment')) {
    for (const c of d.spec.template.spec.containers as Obj[]) {
      const args = [...(c.command ?? []), ...(c.args ?? [])].map(String);
      if (argValue(args, '--pool-name') !== undefined) return { deployment: d, container: c, args };
    }
  }
  assert.fail('a Deployment runs the endpoint picker (--pool-name)');
}

/** A metric spec as the picker takes it (`name` or `name{label=value}`) to its metric name. */
function metricName(spec: string): string {
  return spec.replace(/\{.*\}$/, '').trim();
}

// ---- Dockerfile ------------------------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
}

/** Instructions per stage, continuation lines joined and comment lines dropped. */
function dockerStages(): Instruction[][] {
  const lines = readFileSync(DOCKERFILE, 'utf8').split('\n');
  const instructions: Instruction[] = [];
  let current = '';
  for (const raw of lines) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && current === '')) continue;
    current += (current ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) continue;
    const m = current.match(/^(\w+)\s+([\s\S]*)$/);
    if (m) instructions.push({ op: m[1]!.toUpperCase(), args: m[2]! });
    current = '';
  }
  const stages: Instruction[][] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') stages.push([]);
    if (stages.length === 0) continue; // ARGs before the first FROM
    stages[stages.length - 1]!.push(ins);
  }
  return stages;
}

/** A JSON exec form (`["a", "b"]`) or a shell form split on spaces. */
function execForm(args: string): string[] {
  const t = args.trim();
  return t.startsWith('[') ? (JSON.parse(t) as string[]) : t.split(/\s+/);
}

const stages = dockerStages();
const finalStage = stages[stages.length - 1] ?? [];

function finalEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of finalStage.filter((i) => i.op === 'ENV')) {
    for (const m of ins.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  }
  return env;
}

/** Whether .dockerignore keeps `path` out of the build context (last matching pattern wins). */
function dockerIgnored(path: string): boolean {
  const patterns = readFileSync(join(projectRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const segmentRegex = (s: string) => new RegExp(`^${s.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  const matches = (pattern: string) => {
    const want = pattern.replace(/^\/+|\/+$/g, '').split('/');
    const have = path.split('/');
    // A pattern matching a folder matches everything under it.
    return want.length <= have.length && want.every((seg, i) => segmentRegex(seg).test(have[i]!));
  };
  let ignored = false;
  for (const p of patterns) {
    const negated = p.startsWith('!');
    if (matches(negated ? p.slice(1) : p)) ignored = !negated;
  }
  return ignored;
}

// ---- tests: the set of objects ----------------------------------------------------------------

test('deploy/k8s holds the objects of a pool behind the Inference Extension', () => {
  const kinds = docs.map((d) => d.obj.kind);
  for (const kind of ['Deployment', 'Service', 'InferencePool', 'ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Gateway', 'HTTPRoute']) {
    assert.ok(kinds.includes(kind), `a ${kind} in deploy/k8s`);
  }
  assert.equal(ofKind('Deployment').length, 2, 'two Deployments: Iris and the endpoint picker');
  for (const { file, obj } of docs) {
    assert.ok(obj.apiVersion && obj.kind, `${file}: apiVersion and kind`);
    if (obj.kind !== 'Kustomization') assert.ok(obj.metadata?.name, `${file}: a ${obj.kind} has a name`);
  }
});

test('kustomization.yaml lists every manifest in deploy/k8s', () => {
  const k = ofKind('Kustomization');
  assert.equal(k.length, 1, 'one kustomization');
  const listed = [...(k[0]!.resources as string[])].sort();
  const files = [...new Set(docs.filter((d) => d.obj.kind !== 'Kustomization').map((d) => d.file))].sort();
  assert.deepEqual(listed, files);
});

test('the InferencePool is inference.networking.k8s.io/v1 with the spec fields of that API', () => {
  assert.equal(pool().apiVersion, `${POOL_GROUP}/v1`);
  assert.deepEqual(Object.keys(pool().spec).sort(), ['endpointPickerRef', 'selector', 'targetPorts']);
  assert.deepEqual(Object.keys(pool().spec.selector), ['matchLabels']);
});

// ---- tests: labels and selectors ----------------------------------------------------------------

test('each Deployment selects its own pod template', () => {
  for (const d of ofKind('Deployment')) {
    assert.ok(selects(d.spec.selector?.matchLabels, d.spec.template.metadata.labels), `${d.metadata.name}: selector matches the pod labels`);
  }
});

test('each Service selects the pods of one Deployment', () => {
  for (const s of ofKind('Service')) {
    const targets = ofKind('Deployment').filter((d) => selects(s.spec.selector, d.spec.template.metadata.labels));
    assert.equal(targets.length, 1, `Service ${s.metadata.name} selects the pods of exactly one Deployment`);
  }
  const irisServices = ofKind('Service').filter((s) => selects(s.spec.selector, modelServer().spec.template.metadata.labels));
  assert.equal(irisServices.length, 1, 'one Service in front of the model servers');
});

test('the InferencePool selects the model server pods and not the endpoint picker', () => {
  assert.ok(selects(pool().spec.selector.matchLabels, modelServer().spec.template.metadata.labels));
  const { deployment } = eppDeployment();
  assert.notEqual(deployment, modelServer());
  assert.ok(!selects(pool().spec.selector.matchLabels, deployment.spec.template.metadata.labels));
});

// ---- tests: ports and probes --------------------------------------------------------------------

test('--port, the container port, the Service targetPort and the pool targetPorts agree', () => {
  assert.equal(numberArg('--port'), containerPort(), '--port is the container port');
  assert.equal(argValue(irisArgs(), '--host'), '0.0.0.0', 'Iris listens on every interface of the pod');
  for (const s of ofKind('Service').filter((x) => selects(x.spec.selector, modelServer().spec.template.metadata.labels))) {
    for (const p of s.spec.ports as Obj[]) {
      assert.equal(resolvePort(p.targetPort ?? p.port, irisContainer()), containerPort(), `Service ${s.metadata.name} targets the container port`);
    }
  }
  const targetPorts = (pool().spec.targetPorts as Obj[]).map((p) => p.number);
  assert.deepEqual(targetPorts, [containerPort()], 'the pool targets the container port');
});

test('the probes ask GET /health on the container port', () => {
  const probes = ['readinessProbe', 'livenessProbe', 'startupProbe'].filter((p) => irisContainer()[p]);
  assert.ok(probes.includes('readinessProbe') && probes.includes('livenessProbe'), 'readiness and liveness probes');
  for (const name of probes) {
    const get = irisContainer()[name].httpGet;
    assert.ok(get, `${name} is an HTTP GET`);
    assert.equal(get.path, '/health', `${name} path`);
    assert.equal(resolvePort(get.port, irisContainer()), containerPort(), `${name} port`);
  }
});

// ---- tests: shutdown ----------------------------------------------------------------------------

test('terminationGracePeriodSeconds covers the preStop wait and the drain', () => {
  const grace = numberArg('--shutdown-grace-period');
  const preStop = preStopSeconds(irisContainer());
  assert.ok(preStop > 0, 'a preStop wait lets the gateway stop sending before the drain starts');
  const period = modelServer().spec.template.spec.terminationGracePeriodSeconds;
  assert.equal(typeof period, 'number', 'terminationGracePeriodSeconds is set (the default, 30 s, is no larger than the drain)');
  assert.ok(period >= preStop + grace + SERVER_ABORT_SECONDS, `terminationGracePeriodSeconds ${period} >= preStop ${preStop} + --shutdown-grace-period ${grace} + ${SERVER_ABORT_SECONDS}`);
});

test('the liveness probe does not restart a draining server', () => {
  // /health answers 503 while draining; liveness must not fail for the whole drain.
  const grace = numberArg('--shutdown-grace-period');
  const p = irisContainer().livenessProbe;
  const tolerated = (p.failureThreshold ?? 3) * (p.periodSeconds ?? 10);
  assert.ok(tolerated > grace + preStopSeconds(irisContainer()), `liveness tolerates ${tolerated} s of failures, more than the drain`);
});

// ---- tests: security and resources ------------------------------------------------------------

test('every pod runs as a non-root user', () => {
  for (const d of ofKind('Deployment')) {
    const pod = d.spec.template.spec;
    for (const c of pod.containers as Obj[]) {
      const ctx = { ...pod.securityContext, ...c.securityContext };
      assert.equal(ctx.runAsNonRoot, true, `${d.metadata.name}/${c.name}: runAsNonRoot`);
      if (ctx.runAsUser !== undefined) assert.notEqual(ctx.runAsUser, 0, `${d.metadata.name}/${c.name}: runAsUser is not 0`);
      assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${d.metadata.name}/${c.name}: no privilege escalation`);
    }
  }
});

test('every container requests CPU and memory; the model server has a memory limit and --threads within its CPUs', () => {
  for (const d of ofKind('Deployment')) {
    for (const c of d.spec.template.spec.containers as Obj[]) {
      assert.ok(c.resources?.requests?.cpu, `${d.metadata.name}/${c.name}: CPU request`);
      assert.ok(c.resources?.requests?.memory, `${d.metadata.name}/${c.name}: memory request`);
    }
  }
  // Iris plans its memory from the cgroup limit, so without one it plans for the whole node.
  assert.ok(irisContainer().resources.limits?.memory, 'memory limit');
  const cpu = String(irisContainer().resources.limits?.cpu ?? irisContainer().resources.requests.cpu);
  const cpus = cpu.endsWith('m') ? Number(cpu.slice(0, -1)) / 1000 : Number(cpu);
  assert.ok(numberArg('--threads') <= cpus, '--threads no more than the CPUs the container gets');
});

// ---- tests: the endpoint picker ---------------------------------------------------------------

test('the endpoint picker reads only metrics Iris exports', () => {
  const { config } = eppConfig();
  const extractor = (config.plugins as Obj[]).find((p) => p.type === 'core-metrics-extractor');
  assert.ok(extractor, 'a core-metrics-extractor plugin');
  const params = extractor.parameters ?? {};
  const engines: Obj[] = params.engineConfigs ?? [];
  const engine = engines.find((e) => e.name === params.defaultEngine);
  assert.ok(engine, `the default engine ${params.defaultEngine} is configured`);
  // Names the picker would read for this engine; an empty spec turns that metric off.
  const specs = ['queuedRequestsSpec', 'runningRequestsSpec', 'kvUsageSpec', 'loraSpec', 'cacheInfoSpec', 'cacheBlockSizeSpec', 'cacheNumBlocksSpec'];
  for (const key of Object.keys(engine)) {
    if (key !== 'name' && !key.endsWith('LabelName')) assert.ok(specs.includes(key), `known engine field ${key}`);
  }
  for (const key of ['queuedRequestsSpec', 'runningRequestsSpec', 'kvUsageSpec']) {
    assert.ok(engine[key], `${key} is set`);
  }
  for (const key of specs) {
    const spec = engine[key];
    if (spec) assert.ok(EXPORTED_METRICS.includes(metricName(spec)), `${key}: ${spec} is a metric Iris exports`);
  }
  // Unset specs would fall back to the built-in defaults of the engine, not to nothing.
  for (const key of ['loraSpec', 'cacheInfoSpec']) assert.equal(engine[key], '', `${key} is explicitly off`);
  // The pods carry the label that selects this engine.
  const labelKey = params.engineLabelKey ?? `${POOL_GROUP}/engine-type`;
  assert.equal(modelServer().spec.template.metadata.labels[labelKey], engine.name, `pods labelled ${labelKey}: ${engine.name}`);
});

test('the endpoint picker scrapes /metrics and scores queue, KV use and prefix affinity', () => {
  const { config } = eppConfig();
  const plugins = config.plugins as Obj[];
  const names = new Set(plugins.map((p) => p.name ?? p.type));
  const source = plugins.find((p) => p.type === 'metrics-data-source');
  assert.equal(source?.parameters?.path ?? '/metrics', '/metrics');
  assert.equal(source?.parameters?.scheme ?? 'http', 'http');
  const profile = (config.schedulingProfiles as Obj[])[0]!;
  const refs = (profile.plugins as Obj[]).map((p) => p.pluginRef);
  for (const ref of refs) assert.ok(names.has(ref), `scheduling profile refers to a declared plugin: ${ref}`);
  for (const scorer of ['queue-scorer', 'kv-cache-utilization-scorer', 'prefix-cache-scorer']) {
    assert.ok(refs.some((r) => plugins.find((p) => (p.name ?? p.type) === r)?.type === scorer), `${scorer} in the profile`);
  }
  for (const s of config.dataLayer?.sources ?? []) {
    assert.ok(names.has(s.pluginRef), `data layer source ${s.pluginRef} is declared`);
    for (const e of s.extractors ?? []) assert.ok(names.has(e.pluginRef), `extractor ${e.pluginRef} is declared`);
  }
  // The prefix index counts blocks of Iris's KV page size (16 tokens) when no metric says it.
  const prefix = plugins.find((p) => p.type === 'prefix-cache-scorer')!;
  if (prefix.parameters?.autoTune === false) assert.equal(prefix.parameters.blockSizeTokens, 16);
});

test('the endpoint picker is wired to the pool, its config and its Service', () => {
  const { deployment, container, args } = eppDeployment();
  assert.equal(argValue(args, '--pool-name'), pool().metadata.name, '--pool-name is the pool');
  assert.equal(argValue(args, '--pool-group') ?? POOL_GROUP, POOL_GROUP);
  // --config-file is the ConfigMap key, as mounted.
  const { configMap, key } = eppConfig();
  const configFile = argValue(args, '--config-file');
  const volumes: Obj[] = deployment.spec.template.spec.volumes ?? [];
  const mounted = (container.volumeMounts as Obj[] ?? []).some((m) => {
    const v = volumes.find((x) => x.name === m.name);
    return v?.configMap?.name === configMap.metadata.name && configFile === `${m.mountPath.replace(/\/$/, '')}/${key}`;
  });
  assert.ok(mounted, `--config-file ${configFile} is ${configMap.metadata.name}'s ${key}`);
  // The pool's endpointPickerRef is the picker's Service and its ext-proc port.
  const ref = pool().spec.endpointPickerRef;
  assert.equal(ref.kind ?? 'Service', 'Service');
  assert.equal(ref.group ?? '', '');
  const svc = one('Service', ref.name);
  assert.ok(selects(svc.spec.selector, deployment.spec.template.metadata.labels), 'endpointPickerRef Service selects the picker');
  const port = (svc.spec.ports as Obj[]).find((p) => p.port === ref.port?.number);
  assert.ok(port, `the Service has port ${ref.port?.number}`);
  assert.equal(resolvePort(port.targetPort ?? port.port, container), 9002, 'the ext-proc port is the picker gRPC port (9002)');
  assert.ok((container.ports as Obj[]).some((p) => p.containerPort === 9002), 'the picker exposes 9002');
  // Its ServiceAccount exists and may read pods and pools.
  const sa = deployment.spec.template.spec.serviceAccountName;
  one('ServiceAccount', sa);
  const bindings = ofKind('RoleBinding').filter((b) => (b.subjects as Obj[]).some((s) => s.kind === 'ServiceAccount' && s.name === sa));
  const rules = bindings.flatMap((b) => one(b.roleRef.kind, b.roleRef.name).rules as Obj[]);
  const may = (group: string, resource: string) => rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && ['get', 'list', 'watch'].every((v) => r.verbs.includes(v)));
  assert.ok(may('', 'pods'), 'the picker may watch pods');
  assert.ok(may(POOL_GROUP, 'inferencepools'), 'the picker may watch inferencepools');
});

test('the HTTPRoute sends to the InferencePool from the Gateway', () => {
  const routes = ofKind('HTTPRoute');
  assert.equal(routes.length, 1);
  const route = routes[0]!;
  const gateways = ofKind('Gateway').map((g) => g.metadata.name);
  for (const p of route.spec.parentRefs as Obj[]) assert.ok(gateways.includes(p.name), `parentRef ${p.name} is a Gateway here`);
  const backends = (route.spec.rules as Obj[]).flatMap((r) => r.backendRefs as Obj[]);
  assert.ok(backends.length > 0);
  for (const b of backends) {
    assert.equal(b.group, POOL_GROUP, 'backendRef group');
    assert.equal(b.kind, 'InferencePool', 'backendRef kind');
    assert.equal(b.name, pool().metadata.name, 'backendRef name');
  }
});

// ---- tests: the Dockerfile ----------------------------------------------------------------------

test('the Dockerfile builds in one stage and runs from another', () => {
  assert.ok(stages.length >= 2, `${stages.length} stage(s)`);
  const froms = stages.map((s) => s[0]!.args);
  assert.ok(froms.every((f) => /node:20-bookworm-slim|\$\{?NODE_IMAGE/.test(f)), 'stages start from node:20-bookworm-slim');
  assert.ok(!finalStage.some((i) => i.op === 'RUN' && /npm (ci|install)(?![^&]*--ignore-scripts)/.test(i.args)), 'the final stage runs no npm install with scripts (prepare needs tsc)');
  assert.ok(finalStage.some((i) => i.op === 'COPY' && /--from=/.test(i.args) && /node_modules/.test(i.args)), 'the final stage takes node_modules from the build stage');
});

test('the final stage runs as a non-root user, the one the pods run as', () => {
  const users = finalStage.filter((i) => i.op === 'USER');
  assert.ok(users.length > 0, 'a USER in the final stage');
  const user = users[users.length - 1]!.args.trim().split(':')[0]!;
  assert.ok(!['root', '0'].includes(user), `USER ${user} is not root`);
  // A numeric user lets the kubelet check runAsNonRoot.
  assert.match(user, /^\d+$/, 'USER is numeric');
  const podUser = modelServer().spec.template.spec.securityContext?.runAsUser ?? irisContainer().securityContext?.runAsUser;
  if (podUser !== undefined) assert.equal(podUser, Number(user), 'the pod runs as the image user');
});

test('the final stage carries the folders the server reads beside dist/ (built-in model, playground), and .dockerignore lets the copied files in', () => {
  const copies = finalStage.filter((i) => i.op === 'COPY' || i.op === 'ADD');
  // Asked of the server's own code, so a folder it starts to read is checked here too.
  for (const dir of [builtinModelPath(), playgroundDir()].map((d) => relative(projectRoot, d))) {
    assert.ok(copies.some((i) => execForm(i.args).filter((a) => !a.startsWith('--')).slice(0, -1).includes(dir)), `${dir} copied into the image`);
  }
  const fromContext = stages.flat().filter((i) => (i.op === 'COPY' || i.op === 'ADD') && !/--from=/.test(i.args));
  for (const ins of fromContext) {
    const parts = execForm(ins.args).filter((a) => !a.startsWith('--'));
    for (const src of parts.slice(0, -1)) assert.ok(!dockerIgnored(src), `${src} is in the build context`);
  }
  assert.ok(dockerIgnored('node_modules') && dockerIgnored('dist'), 'the host node_modules and dist stay out');
});

test('the image exposes the port the manifests use and serves on it by default', () => {
  const exposed = finalStage.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map((p) => Number(p.split('/')[0]));
  assert.deepEqual(exposed, [containerPort()], 'EXPOSE is the container port');
  const cmd = finalStage.filter((i) => i.op === 'CMD').map((i) => execForm(i.args)).pop() ?? [];
  const entry = finalStage.filter((i) => i.op === 'ENTRYPOINT').map((i) => execForm(i.args)).pop() ?? [];
  const full = [...entry, ...cmd];
  assert.ok(full.includes('serve'), 'default command is iris serve');
  assert.equal(argValue(full, '--port'), String(containerPort()), 'default --port');
  assert.equal(argValue(full, '--host'), '0.0.0.0', 'default --host');
  assert.equal(argValue(full, '--model-path'), undefined, 'the default command serves the built-in model');
  for (const hc of finalStage.filter((i) => i.op === 'HEALTHCHECK')) {
    assert.match(hc.args, new RegExp(`:${containerPort()}/health\\b`), 'HEALTHCHECK asks /health on that port');
  }
});

test('the image keeps its caches where the pods mount a volume', () => {
  const env = finalEnv();
  const mounts: string[] = (irisContainer().volumeMounts as Obj[]).map((m) => m.mountPath.replace(/\/$/, ''));
  for (const name of ['HF_HOME', 'IRIS_CACHE_DIR']) {
    const dir = env[name];
    assert.ok(dir, `${name} is set in the image`);
    assert.ok(mounts.some((m) => dir === m || dir.startsWith(`${m}/`)), `${name}=${dir} is on a mounted volume`);
  }
});

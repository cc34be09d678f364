// Shared by the three load scripts: the load model (config.json, generated from Sources/Spec by
// `swift run signet-sim k6-config`; do not edit it by hand), the target, and checked requests.
//
// Only SIGNET_URL and SIGNET_ADMIN_TOKEN are needed: the same scripts run against the local stack
// (ci/load) and against staging. SIGNET_LOAD_TEST_* variables exist for the suite's own tests
// (a short run, a short ramp, an impossible threshold) and are never set by ci/load;
// SIGNET_LOAD_THINK_SECONDS is for saturation runs by hand.
import http from 'k6/http';
import exec from 'k6/execution';
import encoding from 'k6/encoding';
import { check, sleep } from 'k6';

export const baseURL = (__ENV.SIGNET_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const adminToken = __ENV.SIGNET_ADMIN_TOKEN || '';

// The k6 options of one scenario of the model: its virtual users for the duration (reached over
// the model's ramp-up first, when it has one), and the spec's thresholds on the load itself,
// ramp included (set-up requests are not part of it).
export function optionsFor(config, name) {
  const p95 = Number(__ENV.SIGNET_LOAD_TEST_P95_MS || config.thresholds.p95Milliseconds);
  const load = `{scenario:${name}}`;
  return {
    scenarios: { [name]: executorFor(config, name) },
    thresholds: {
      [`http_req_duration${load}`]: [`p(95)<${p95}`],
      [`http_req_failed${load}`]: [`rate<${config.thresholds.maxFailedRate}`],
      [`checks${load}`]: [`rate>${config.thresholds.minChecksRate}`],
      // A run that sent nothing proves nothing.
      [`http_reqs${load}`]: ['count>0'],
    },
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
    setupTimeout: '180s',
  };
}

function executorFor(config, name) {
  const vus = virtualUsers(config, name);
  const duration = __ENV.SIGNET_LOAD_TEST_DURATION || `${config.scenarios[name].durationSeconds}s`;
  // SIGNET_LOAD_TEST_RAMP_UP (a k6 duration such as "1s") replaces a ramp the model has; it
  // adds none to a scenario that starts at once.
  const modelled = Number(config.scenarios[name].rampUpSeconds || 0);
  if (!(modelled > 0)) return { executor: 'constant-vus', vus, duration };
  const rampUp = __ENV.SIGNET_LOAD_TEST_RAMP_UP || `${modelled}s`;
  return {
    executor: 'ramping-vus',
    startVUs: 0,
    stages: [
      { duration: rampUp, target: vus },
      { duration, target: vus },
    ],
  };
}

export function virtualUsers(config, name) {
  const scenario = config.scenarios[name];
  if (!scenario) throw new Error(`config.json has no scenario ${name}`);
  return Number(__ENV.SIGNET_LOAD_TEST_VUS || scenario.virtualUsers);
}

// The model's pause after an iteration: the think time ± config.thinkTimeJitter, drawn afresh.
// SIGNET_LOAD_THINK_SECONDS replaces it for a saturation run (0: no pause), which needs the rate
// limits raised to match (docs/performance.md).
export function thinkTime(config, name) {
  const fixed = __ENV.SIGNET_LOAD_THINK_SECONDS;
  const seconds = fixed !== undefined ? Number(fixed) : config.scenarios[name].thinkTimeSeconds * (1 + config.thinkTimeJitter * (2 * Math.random() - 1));
  if (seconds > 0) sleep(seconds);
}

// Before a virtual user's first iteration: a random part of one think time, so the users do not
// start (and then keep arriving) as one burst.
export function spreadStart(config, name) {
  if (__ITER === 0 && __ENV.SIGNET_LOAD_THINK_SECONDS === undefined) sleep(Math.random() * config.scenarios[name].thinkTimeSeconds);
}

// Stops the run at once, with one line, when nothing answers at SIGNET_URL or the admin token is
// refused: otherwise every virtual user would wait on timeouts and the run would say little.
export function requireSignet() {
  const live = http.get(`${baseURL}/health/live`, { timeout: '5s', tags: { name: 'setup' } });
  if (live.status !== 200) {
    exec.test.abort(`Signet is not reachable at ${baseURL} (${live.error || `status ${live.status}`}); set SIGNET_URL`);
  }
  if (!adminToken) exec.test.abort('SIGNET_ADMIN_TOKEN is not set');
  const metadata = http.get(`${baseURL}/.well-known/oauth-authorization-server`, { tags: { name: 'setup' } });
  if (metadata.status !== 200) exec.test.abort(`GET /.well-known/oauth-authorization-server answered ${metadata.status}`);
  return { issuer: metadata.json('issuer') };
}

// The JSON body of a response, or {} when it has none (a check on it then fails, not the script).
export function bodyOf(response) {
  try {
    return response.json() || {};
  } catch (error) {
    return {};
  }
}

export function adminHeaders() {
  return { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json' };
}

// Registers `count` agents (in batches), aborting on the first refusal: the load needs all of them.
// Returns them packed, one line per agent in one string: k6 copies set-up data into every virtual
// user and keeps it there, and a thousand users each holding a thousand agent objects made k6's
// live heap 740 MB instead of 306, each collection of it about a second of k6's CPU on the cores
// the stack runs on. A string is one allocation with nothing in it to trace. agentOf() unpacks a
// user's own agent.
export function registerAgents(count, prefix, scopes) {
  const lines = [];
  const stamp = Date.now();
  for (let start = 0; start < count; start += 50) {
    const batch = [];
    for (let index = start; index < Math.min(count, start + 50); index += 1) {
      batch.push({
        method: 'POST',
        url: `${baseURL}/v1/agents`,
        body: JSON.stringify({ name: `${prefix}-${stamp}-${index}`, owner: 'k6-load', scopes }),
        params: { headers: adminHeaders(), tags: { name: 'setup' } },
      });
    }
    for (const response of http.batch(batch)) {
      if (response.status !== 201) {
        exec.test.abort(`registering load agents: POST /v1/agents answered ${response.status}: ${response.body}`);
      }
      const agent = response.json();
      // URL-safe characters only: nothing an answer holds can move a field, add a line or steer
      // a later request's path (the id goes into /v1/agents/{id}/...). The secret is not printed.
      for (const field of ['id', 'client_id', 'client_secret']) {
        if (typeof (agent || {})[field] !== 'string' || !/^[A-Za-z0-9._~-]+$/.test(agent[field])) {
          exec.test.abort(`registering load agents: POST /v1/agents answered an agent whose ${field} is missing or not URL-safe`);
        }
      }
      lines.push(`${agent.id} ${agent.client_id} ${agent.client_secret}`);
    }
  }
  return lines.join('\n');
}

// This virtual user's own agent, { id, clientID, secret }, from the set-up data's packed list,
// which it then drops (about 100 KB per user). Each user has its own agent: the list holds one
// per virtual user, and a run with more users than agents stops rather than share one.
let ownAgent = null;
export function agentOf(context) {
  if (ownAgent === null) {
    const lines = context.agents.split('\n');
    if (__VU > lines.length) exec.test.abort(`virtual user ${__VU} has no agent of its own (${lines.length} registered)`);
    const [id, clientID, secret] = lines[__VU - 1].split(' ');
    ownAgent = { id, clientID, secret };
    context.agents = null;
  }
  return ownAgent;
}

// The limiter is on: every limited response carries its headers.
export function limited(response) {
  return typeof response.headers.Ratelimit === 'string' && response.headers.Ratelimit.startsWith('limit=');
}

function decodePart(part) {
  return JSON.parse(encoding.b64decode(part, 'rawurl', 's'));
}

// Asks for a token with client_secret_basic or client_secret_post and checks the answer and the
// JWT inside it (RFC 9068 header and claims). Returns the access token, or null.
export function requestToken(context, agent, secret, method, scope, tag) {
  const form = { grant_type: 'client_credentials' };
  if (scope) form.scope = scope;
  const params = { headers: {}, tags: { name: tag || 'POST /oauth/token' } };
  if (method === 'basic') {
    params.headers.Authorization = `Basic ${encoding.b64encode(`${agent.clientID}:${secret}`)}`;
  } else {
    form.client_id = agent.clientID;
    form.client_secret = secret;
  }
  const response = http.post(`${baseURL}/oauth/token`, form, params);
  let header = null;
  let claims = null;
  let body = null;
  try {
    body = response.json();
    const parts = body.access_token.split('.');
    header = decodePart(parts[0]);
    claims = decodePart(parts[1]);
  } catch (error) {
    body = body || {};
  }
  const ok = check(response, {
    'token: 200': (r) => r.status === 200,
    'token: RateLimit header': limited,
    'token: no-store': (r) => r.headers['Cache-Control'] === 'no-store',
    'token: Bearer, expires_in': () => body.token_type === 'Bearer' && body.expires_in > 0,
    'token: header ES256 at+jwt with kid': () =>
      header !== null && header.alg === 'ES256' && header.typ === 'at+jwt' && typeof header.kid === 'string',
    'token: claims name the agent and issuer': () =>
      claims !== null && claims.sub === agent.id && claims.client_id === agent.clientID && claims.iss === context.issuer,
    'token: lifetime and id': () =>
      claims !== null && claims.exp - claims.iat === body.expires_in && typeof claims.jti === 'string' && claims.jti.length > 0,
    'token: scope granted': () => claims !== null && (!scope || claims.scope.split(' ').includes(scope)),
  });
  return ok ? body.access_token : null;
}

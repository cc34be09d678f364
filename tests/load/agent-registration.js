// Agent registration under load (spec: 100 virtual users, 60 s): each iteration registers a new
// agent with a unique name and reads it back, as the operator's automation (the admin token).
// Run: SIGNET_URL=... SIGNET_ADMIN_TOKEN=... k6 run tests/load/agent-registration.js
import http from 'k6/http';
import { check } from 'k6';
import { adminHeaders, baseURL, bodyOf, limited, optionsFor, requireSignet, spreadStart, thinkTime } from './lib/signet.js';

const config = JSON.parse(open('./config.json'));
const name = 'agent-registration';
export const options = optionsFor(config, name);

export function setup() {
  return requireSignet();
}

export default function () {
  spreadStart(config, name);
  const agentName = `load-${Date.now()}-${__VU}-${__ITER}`;
  const created = http.post(
    `${baseURL}/v1/agents`,
    JSON.stringify({ name: agentName, owner: 'k6-load', scopes: ['reports:read'], metadata: { vu: __VU } }),
    { headers: adminHeaders(), tags: { name: 'POST /v1/agents' } },
  );
  const agent = bodyOf(created);
  const registered = check(created, {
    'register: 201': (r) => r.status === 201,
    'register: RateLimit header': limited,
    'register: id, client id and secret once': () =>
      typeof agent.id === 'string' && /^sgc_[A-Za-z0-9_-]{22}$/.test(agent.client_id) && /^sgs_/.test(agent.client_secret),
    'register: name and scopes echoed': () => agent.name === agentName && agent.status === 'active',
  });
  if (registered) {
    const read = http.get(`${baseURL}/v1/agents/${agent.id}`, { headers: adminHeaders(), tags: { name: 'GET /v1/agents/{id}' } });
    const body = bodyOf(read);
    check(read, {
      'read: 200': (r) => r.status === 200,
      'read: RateLimit header': limited,
      'read: the same agent, no secret': () =>
        body.id === agent.id && body.name === agentName && body.client_id === agent.client_id && body.client_secret === undefined,
    });
  }
  thinkTime(config, name);
}

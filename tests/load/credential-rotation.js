// Credential rotation under load (spec: 50 virtual users, 60 s): set-up registers one agent per
// virtual user. Each rotates its own credential as the agent (a bearer token with
// credentials:rotate, from its current secret), gets a token with the new secret, and checks the
// old secret still works inside the grace period.
// Run: SIGNET_URL=... SIGNET_ADMIN_TOKEN=... k6 run tests/load/credential-rotation.js
import http from 'k6/http';
import { check } from 'k6';
import { agentOf, baseURL, bodyOf, limited, optionsFor, registerAgents, requestToken, requireSignet, spreadStart, thinkTime, virtualUsers } from './lib/signet.js';

const config = JSON.parse(open('./config.json'));
const name = 'credential-rotation';
export const options = optionsFor(config, name);

export function setup() {
  const context = requireSignet();
  context.agents = registerAgents(virtualUsers(config, name), 'load-rotation', ['credentials:rotate', 'reports:read']);
  return context;
}

// Per virtual user: its current secret and a token minted with it.
let secret = null;
let bearer = null;

export default function (context) {
  spreadStart(config, name);
  const agent = agentOf(context);
  if (secret === null) secret = agent.secret;
  if (bearer === null) bearer = requestToken(context, agent, secret, 'post', 'credentials:rotate', 'POST /oauth/token (bearer)');
  if (bearer === null) {
    thinkTime(config, name);
    return;
  }
  const rotated = http.post(
    `${baseURL}/v1/agents/${agent.id}/credentials/rotate`,
    JSON.stringify({ graceSeconds: config.rotationGraceSeconds }),
    { headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json' }, tags: { name: 'POST /v1/agents/{id}/credentials/rotate' } },
  );
  const body = bodyOf(rotated);
  const ok = check(rotated, {
    'rotate: 201': (r) => r.status === 201,
    'rotate: RateLimit header': limited,
    'rotate: a new secret for the same client': () => /^sgs_/.test(body.client_secret) && body.client_id === agent.clientID,
  });
  if (!ok) {
    bearer = null;
    thinkTime(config, name);
    return;
  }
  const old = secret;
  secret = body.client_secret;
  // The new secret works at once (and its token is the next rotation's bearer) ...
  bearer = requestToken(context, agent, secret, 'basic', 'credentials:rotate', 'POST /oauth/token (new secret)');
  // ... and the old one still does, inside the grace period.
  requestToken(context, agent, old, 'post', 'reports:read', 'POST /oauth/token (old secret)');
  thinkTime(config, name);
}

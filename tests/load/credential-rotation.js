// Credential rotation under load (spec: 50 virtual users, 60 s): set-up registers one agent per
// virtual user. Each rotates its own credential as the agent (HTTP Basic with its current secret:
// an access token acts on nothing at Signet), gets a token with the new secret, and checks the old
// secret still works inside the grace period.
// Run: SIGNET_URL=... SIGNET_ADMIN_TOKEN=... k6 run tests/load/credential-rotation.js
import http from 'k6/http';
import encoding from 'k6/encoding';
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

// Per virtual user: its current secret.
let secret = null;

export default function (context) {
  spreadStart(config, name);
  const agent = agentOf(context);
  if (secret === null) secret = agent.secret;
  const rotated = http.post(
    `${baseURL}/v1/agents/${agent.id}/credentials/rotate`,
    JSON.stringify({ graceSeconds: config.rotationGraceSeconds }),
    {
      headers: { Authorization: `Basic ${encoding.b64encode(`${agent.clientID}:${secret}`)}`, 'Content-Type': 'application/json' },
      tags: { name: 'POST /v1/agents/{id}/credentials/rotate' },
    },
  );
  const body = bodyOf(rotated);
  const ok = check(rotated, {
    'rotate: 201': (r) => r.status === 201,
    'rotate: RateLimit header': limited,
    'rotate: a new secret for the same client': () => /^sgs_/.test(body.client_secret) && body.client_id === agent.clientID,
  });
  if (!ok) {
    thinkTime(config, name);
    return;
  }
  const old = secret;
  secret = body.client_secret;
  // The new secret works at once ...
  requestToken(context, agent, secret, 'basic', 'reports:read', 'POST /oauth/token (new secret)');
  // ... and the old one still does, inside the grace period.
  requestToken(context, agent, old, 'post', 'reports:read', 'POST /oauth/token (old secret)');
  thinkTime(config, name);
}

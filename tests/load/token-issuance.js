// Token issuance under load (spec: 1000 virtual users, 60 s): set-up registers one agent per
// virtual user; each asks for tokens with its own credentials, client_secret_basic and
// client_secret_post in turn, and checks the JWT's header and claims.
// Run: SIGNET_URL=... SIGNET_ADMIN_TOKEN=... k6 run tests/load/token-issuance.js
import { agentOf, optionsFor, registerAgents, requestToken, requireSignet, spreadStart, thinkTime, virtualUsers } from './lib/signet.js';

const config = JSON.parse(open('./config.json'));
const name = 'token-issuance';
export const options = optionsFor(config, name);

export function setup() {
  const context = requireSignet();
  context.agents = registerAgents(virtualUsers(config, name), 'load-token', ['reports:read', 'reports:write']);
  return context;
}

export default function (context) {
  spreadStart(config, name);
  const agent = agentOf(context);
  const method = __ITER % 2 === 0 ? 'basic' : 'post';
  requestToken(context, agent, agent.secret, method, 'reports:read', `POST /oauth/token (${method})`);
  thinkTime(config, name);
}

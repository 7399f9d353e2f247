// A local OpenID Connect provider for the Himalia JupyterHub demo and tests, built on oidc-provider.
// Development only: in-memory storage, keys made at start, plain HTTP. See README.md.
//
//   node server.mjs            (configured by the IDP_* environment variables below)
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider from 'oidc-provider';

import { AccountStore } from './accounts.mjs';
import * as pages from './pages.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

// The client secret when IDP_CLIENT_SECRET is unset; documented in README.md, fine for a laptop only.
const DEV_CLIENT_SECRET = 'himalia-dev-secret';
const INVALID_LOGIN = 'Invalid login or password.';
const FORM_LIMIT = 16 * 1024;

function fail(message) {
  console.error(`dev-idp: ${message}`);
  process.exit(2);
}

function list(value, fallback) {
  const items = (value ?? '')
    .split(',')
    .map(item => item.trim())
    .filter(Boolean);
  return items.length ? items : fallback;
}

function positiveInteger(name, value, fallback) {
  if (value === undefined || value === '') {
    return fallback;
  }
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0) {
    fail(`${name} must be a positive integer, not ${JSON.stringify(value)}`);
  }
  return number;
}

function portNumber(name, value, fallback) {
  const port = positiveInteger(name, value, fallback);
  if (port > 65535) {
    fail(`${name} must be at most 65535, not ${port}`);
  }
  return port;
}

/** The hub's pages at both loopback names: people open either, and the hub calls back on the same one. */
function hubUrls(hubPort, path) {
  return ['127.0.0.1', 'localhost'].map(
    host => `http://${host}:${hubPort}${path}`
  );
}

function readConfig(env) {
  const port = portNumber('IDP_PORT', env.IDP_PORT, 9000);
  const hubPort = portNumber('IDP_HUB_PORT', env.IDP_HUB_PORT, 8000);
  const host = env.IDP_HOST || '127.0.0.1';
  return {
    port,
    host,
    issuer: (env.IDP_ISSUER || `http://127.0.0.1:${port}`).replace(/\/+$/, ''),
    clientId: env.IDP_CLIENT_ID || 'himalia-hub',
    clientSecret: env.IDP_CLIENT_SECRET || DEV_CLIENT_SECRET,
    redirectUris: list(
      env.IDP_REDIRECT_URIS,
      hubUrls(hubPort, '/hub/oauth_callback')
    ),
    postLogoutRedirectUris: list(
      env.IDP_POST_LOGOUT_REDIRECT_URIS,
      hubUrls(hubPort, '/hub/login')
    ),
    accountsPath: resolve(env.IDP_ACCOUNTS || join(HERE, 'accounts.json')),
    // Keys that sign the provider's cookies; random ones mean sign-ins don't survive a restart.
    cookieKeys: list(env.IDP_COOKIE_KEYS, [
      randomBytes(32).toString('base64url')
    ]),
    accessTokenTtl: positiveInteger(
      'IDP_ACCESS_TOKEN_TTL',
      env.IDP_ACCESS_TOKEN_TTL,
      3600
    )
  };
}

/** An RS256 signing key made for this run only: tokens from an earlier run no longer verify. */
function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: randomUUID(),
    alg: 'RS256',
    use: 'sig'
  };
}

const config = readConfig(process.env);
let accounts;
try {
  accounts = await AccountStore.load(config.accountsPath);
} catch (error) {
  fail(
    `cannot load the accounts from ${config.accountsPath}: ${error.message}`
  );
}

const DAY = 24 * 60 * 60;

const provider = new Provider(config.issuer, {
  clients: [
    {
      client_id: config.clientId,
      client_secret: config.clientSecret,
      client_name: 'Himalia JupyterHub',
      redirect_uris: config.redirectUris,
      post_logout_redirect_uris: config.postLogoutRedirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'],
      // The registered method; oidc-provider accepts client_secret_post as well for a client
      // registered with either (oauthenticator posts the secret in the body unless basic_auth is set).
      token_endpoint_auth_method: 'client_secret_basic'
    }
  ],

  async findAccount(ctx, sub) {
    const claims = accounts.claims(sub);
    // The provider keeps only the claims the grant's scopes (or claims parameter) allow.
    return claims && { accountId: sub, claims: async () => claims };
  },
  // Scope -> the claims it releases; each key is also listed in scopes_supported.
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups']
  },
  scopes: ['openid', 'offline_access'],
  responseTypes: ['code'],
  // Put the scopes' claims in the ID token too, not only in userinfo (oauthenticator reads userinfo).
  conformIdTokenClaims: false,
  // Refresh tokens for every sign-in of a client allowed the grant, with or without offline_access:
  // oidc-provider drops offline_access unless prompt=consent is sent, and JupyterHub sends no prompt.
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  // PKCE (S256 only) is checked whenever a code_challenge is sent; required for public clients only,
  // so a confidential client such as the hub may also omit it (oauthenticator's enable_pkce=False).
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },

  features: {
    devInteractions: { enabled: false }, // it would accept any password: /interaction/* is ours below
    revocation: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = pages.logoutPage(form);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = pages.logoutSuccessPage();
      }
    }
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = pages.errorPage(out);
  },
  // No browser-side (CORS) calls are expected: the hub talks to the token and userinfo endpoints.
  clientBasedCORS: () => false,

  cookies: { keys: config.cookieKeys },
  jwks: { keys: [signingKey()] },
  ttl: {
    AccessToken: config.accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 14 * DAY,
    Interaction: 3600,
    Session: 14 * DAY,
    Grant: 14 * DAY
  }
});

// One line on stderr for each protocol error, so a misconfigured hub is easy to diagnose.
for (const event of [
  'authorization.error',
  'grant.error',
  'userinfo.error',
  'end_session.error'
]) {
  provider.on(event, (ctx, error) => {
    console.error(
      `dev-idp ${event}: ${error.message}${error.error_description ? ` (${error.error_description})` : ''}`
    );
  });
}
provider.on('server_error', (ctx, error) =>
  console.error('dev-idp server_error:', error)
);

// -- the interactions: sign-in and automatic consent ----------------------------------------------

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Security-Policy':
      "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    'X-Content-Type-Options': 'nosniff'
  });
  res.end(html);
}

async function readForm(req) {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) {
    return new URLSearchParams();
  }
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > FORM_LIMIT) {
      throw new Error('form too large');
    }
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** A login as it may appear in the log: quoted, bounded, no line breaks. */
function shown(login) {
  return JSON.stringify(login.slice(0, 64));
}

/** Sign-in: check the password against accounts.json and report who signed in. */
async function submitLogin(req, res, details) {
  const form = await readForm(req);
  const login = (form.get('login') ?? '').trim();
  const account = login
    ? await accounts.authenticate(login, form.get('password') ?? '')
    : undefined;
  const from = req.socket.remoteAddress;
  if (!account) {
    console.log(
      `dev-idp login failed: ${shown(login)} from ${from} for client ${details.params.client_id}`
    );
    const clientName = (await provider.Client.find(details.params.client_id))
      ?.clientName;
    sendHtml(
      res,
      401,
      pages.loginPage({
        uid: details.uid,
        clientName,
        login,
        error: INVALID_LOGIN
      })
    );
    return;
  }
  console.log(
    `dev-idp login ok: ${shown(account.login)} from ${from} for client ${details.params.client_id}`
  );
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: account.login } },
    { mergeWithLastSubmission: false }
  );
}

/** Consent: grant whatever this client asked for (the only client is our own hub). */
async function grantConsent(req, res, details) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({
        accountId: session.accountId,
        clientId: params.client_id
      });
  const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } =
    prompt.details;
  if (missingOIDCScope) {
    grant.addOIDCScope(missingOIDCScope.join(' '));
  }
  if (missingOIDCClaims) {
    grant.addOIDCClaims(missingOIDCClaims);
  }
  for (const [indicator, scopes] of Object.entries(
    missingResourceScopes ?? {}
  )) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  await provider.interactionFinished(
    req,
    res,
    { consent },
    { mergeWithLastSubmission: true }
  );
}

async function interaction(req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch {
    sendHtml(res, 400, pages.expiredPage());
    return;
  }
  if (details.uid !== uid) {
    sendHtml(res, 400, pages.expiredPage());
    return;
  }
  const { name } = details.prompt;
  if (name === 'login' && req.method === 'GET' && !action) {
    const clientName = (await provider.Client.find(details.params.client_id))
      ?.clientName;
    sendHtml(res, 200, pages.loginPage({ uid, clientName }));
  } else if (name === 'login' && req.method === 'POST' && action === 'login') {
    await submitLogin(req, res, details);
  } else if (name === 'consent' && req.method === 'GET' && !action) {
    await grantConsent(req, res, details);
  } else {
    sendHtml(res, 400, pages.expiredPage());
  }
}

// -- the server -------------------------------------------------------------------------------

const INTERACTION = /^\/interaction\/([\w-]+)(?:\/(login))?\/?$/;
const oidc = provider.callback();

// /interaction/* is ours (the sign-in form and the automatic consent); the rest is oidc-provider's.
const server = createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://idp.invalid');
  const match = INTERACTION.exec(pathname);
  if (!match) {
    oidc(req, res);
    return;
  }
  interaction(req, res, match[1], match[2]).catch(error => {
    console.error('dev-idp interaction error:', error);
    if (res.headersSent) {
      res.end();
    } else {
      sendHtml(res, 500, pages.errorPage({ error: 'server_error' }));
    }
  });
});

server.on('error', error =>
  fail(`cannot listen on ${config.host}:${config.port}: ${error.message}`)
);
server.listen(config.port, config.host, () => {
  const url = `http://${config.host}:${config.port}`;
  const issuer = config.issuer === url ? '' : ` (issuer ${config.issuer})`;
  console.log(`dev-idp listening on ${url}${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () =>
    server.close(() => process.exit(0)).closeAllConnections()
  );
}

// A local OpenID Connect provider for the dashboard login tests (npm oidc-provider, dev login form).
// Usage: node idp.mjs CONFIG.json   where CONFIG holds {port, client: {client_id, client_secret,
// redirect_uri}, accounts: {login: {name, email, groups}}}.  Listens on 127.0.0.1 only and prints
// "READY <issuer>" once it accepts requests.  Test use only: dev interactions accept any password.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const accounts = config.accounts;

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client.client_id,
    client_secret: config.client.client_secret,
    redirect_uris: [config.client.redirect_uri],
    // Streamlit's st.logout returns through the same /oauth2callback URI.
    post_logout_redirect_uris: [config.client.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], profile: ['name'], email: ['email'], groups: ['groups'] },
  scopes: ['openid', 'profile', 'email', 'groups'],
  // Custom claims (groups) in the ID token, which is what st.user shows.
  conformIdTokenClaims: false,
  cookies: { keys: ['adaptclip-med-test-idp-only'] },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
});
provider.proxy = false;
const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`READY ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));

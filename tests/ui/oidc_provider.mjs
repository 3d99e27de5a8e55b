// A real OpenID provider for the browser test: panva's `oidc-provider` (certified by the
// OpenID Foundation), with its development sign-in pages, one client (the catalogue), PKCE
// required, and a directory of people whose groups and services callvault maps to roles.
//
//   node oidc_provider.mjs PORT REDIRECT_URI
//
// Prints "ready" when it listens. Any password is accepted on its sign-in page (the
// development interactions): the test is of callvault's side of the protocol. How each
// person signed in to the directory (`amr`: with a second factor or not) is part of their
// entry here, as a directory that ran the second factor would say it.
import Provider from 'oidc-provider';

const [port, redirect] = process.argv.slice(2);
const directory = {
  olive: { name: 'Olive Manager', email: 'olive@council.example', groups: ['cc-managers'], callvault_services: ['Parking'], amr: ['pwd', 'mfa'] },
  // signed in to the directory with a password alone
  pam: { name: 'Pam Password', email: 'pam@council.example', groups: ['cc-managers'], callvault_services: ['Parking'], amr: ['pwd'] },
  dpo2: { name: 'Dee PO', email: 'dpo2@council.example', groups: ['data-protection'] },
  nobody: { name: 'No Group', email: 'nobody@council.example', groups: ['finance'] },
};
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'callvault',
    client_secret: 'callvault-test-secret',
    redirect_uris: [redirect],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub', 'amr'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups', 'callvault_services'],
  },
  // the claims in the ID token itself, as Entra ID and Keycloak are set up to send groups
  conformIdTokenClaims: false,
  findAccount: async (_ctx, id) => ({
    accountId: id,
    claims: async () => {
      const { amr: _, ...entry } = directory[id] || {};
      return { sub: `sub-${id}`, preferred_username: id, ...entry };
    },
  }),
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['callvault-test-cookie-key'] },
});
// how the person signed in to the directory (`amr`), as their entry says: the development
// sign-in page reports only who signed in
const finished = provider.interactionFinished.bind(provider);
provider.interactionFinished = (req, res, result, options) => {
  if (result.login) {
    result.login.amr = directory[result.login.accountId]?.amr || ['pwd'];
  }
  return finished(req, res, result, options);
};
provider.listen(Number(port), '127.0.0.1', () => console.log('ready'));

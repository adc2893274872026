// masto.js set-up the way an app does it: register an OAuth app, get an app
// token, register an account with it (POST /api/v1/accounts, which masto.js
// sends as multipart/form-data), and build a REST client on the user token.
// Everything here goes through masto.js's own API; no plain fetch.

import { createOAuthAPIClient, createRestAPIClient } from "masto";

import { baseUrl, OOB, PASSWORD, SCOPES, TIMEOUT_MS, uniqueUsername } from "./helpers.js";

/** A masto.js REST client for `accessToken` (or unauthenticated). */
export function mastoClient(accessToken) {
  return createRestAPIClient({ url: baseUrl(), accessToken, timeout: TIMEOUT_MS });
}

/** POST /api/v1/apps through masto.js (JSON body, redirect_uris as given). */
export async function mastoApp(clientName = "starling-compat-masto") {
  const app = await mastoClient().v1.apps.create({
    clientName,
    redirectUris: OOB,
    scopes: SCOPES,
    website: "https://example.com/compat",
  });
  return app;
}

const oauth = () => createOAuthAPIClient({ url: baseUrl(), timeout: TIMEOUT_MS });

/** client_credentials token through masto.js's oauth client (multipart form). */
export async function mastoAppToken(app) {
  const token = await oauth().token.create({
    grantType: "client_credentials",
    clientId: app.clientId,
    clientSecret: app.clientSecret,
    redirectUri: OOB,
    scope: SCOPES,
  });
  return token.accessToken;
}

/** Password grant through masto.js (`username` is the e-mail, as on Mastodon). */
export async function mastoPasswordLogin(app, email, password = PASSWORD) {
  return oauth().token.create({
    grantType: "password",
    clientId: app.clientId,
    clientSecret: app.clientSecret,
    redirectUri: OOB,
    scope: SCOPES,
    username: email,
    password,
  });
}

let sharedApp;

/**
 * Registers a brand-new account through masto.js and returns
 * { username, email, password, token, client, app }.
 */
export async function mastoUser(prefix = "masto") {
  sharedApp ??= await mastoApp();
  const app = sharedApp;
  const appClient = mastoClient(await mastoAppToken(app));
  const username = uniqueUsername(prefix);
  const email = `${username}@example.com`;
  const token = await appClient.v1.accounts.create({
    username,
    email,
    password: PASSWORD,
    agreement: true,
    locale: "en",
  });
  return { username, email, password: PASSWORD, token: token.accessToken, client: mastoClient(token.accessToken), app };
}

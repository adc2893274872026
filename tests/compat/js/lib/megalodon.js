// megalodon set-up the way an app does it: createApp, then registerAccount with
// an app token. megalodon has no client_credentials grant, so that one token is
// fetched with plain fetch (helpers.appToken); everything else is megalodon's API.

import megalodon from "megalodon";

import { appToken, baseUrl, PASSWORD, SCOPES, uniqueUsername } from "./helpers.js";

// megalodon is CommonJS with `exports.default = generator`.
export const generator = megalodon.default;
export const { detector } = megalodon;

/**
 * An HTTP error from megalodon (axios) cut down to what a failing test should
 * show: the request, the status and the body (an AxiosError prints the whole
 * socket). `response` keeps { status, headers, data } for assertions.
 */
export class MegalodonHttpError extends Error {
  constructor(err) {
    const r = err.response;
    super(`${err.config?.method?.toUpperCase()} ${err.config?.url} -> ${r.status} ${JSON.stringify(r.data)}`);
    this.name = "MegalodonHttpError";
    this.response = { status: r.status, headers: { ...(r.headers?.toJSON?.() ?? r.headers) }, data: r.data };
  }
}

const compactErrors = (client) =>
  new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      return (...args) => {
        const result = value.apply(target, args);
        if (!(result instanceof Promise)) return result;
        return result.catch((err) => {
          throw err?.isAxiosError && err.response ? new MegalodonHttpError(err) : err;
        });
      };
    },
  });

/** A megalodon client for the `mastodon` SNS type (its HTTP errors compacted). */
export function megalodonClient(accessToken = null) {
  return compactErrors(generator("mastodon", baseUrl(), accessToken, "starling-compat-megalodon"));
}

let sharedApp;

/** POST /api/v1/apps through megalodon's registerApp (OOB redirect; also builds the authorize URL). */
export async function megalodonApp() {
  return megalodonClient().registerApp("starling-compat-megalodon", {
    scopes: SCOPES.split(" "),
    website: "https://example.com/compat",
  });
}

/**
 * Registers a brand-new account through megalodon's registerAccount (JSON body)
 * and returns { username, email, password, token, client, app }.
 */
export async function megalodonUser(prefix = "mega") {
  sharedApp ??= await megalodonApp();
  const app = sharedApp;
  const appClient = megalodonClient(await appToken(app.client_id, app.client_secret));
  const username = uniqueUsername(prefix);
  const email = `${username}@example.com`;
  const res = await appClient.registerAccount(username, email, PASSWORD, true, "en");
  const token = res.data.access_token;
  return { username, email, password: PASSWORD, token, client: megalodonClient(token), app };
}

// Sign-in. In Azure: Entra ID with MSAL.js (authorization code + PKCE, the API's scopes).
// Locally: the devhost's dev sign-in (a form; the token comes back in a JSON body).
// Tokens live in sessionStorage (this tab only) or MSAL's session cache, never in a URL.

const TOKEN_KEY = "docgate.devToken";
let config = { signin: "none" };
let msalApp = null;

export async function startAuth(appConfig) {
  config = appConfig;
  if (config.signin !== "entra") return;
  await loadScript("vendor/msal-browser.min.js");
  msalApp = new window.msal.PublicClientApplication({
    auth: {
      clientId: config.clientId,
      authority: config.authority,
      redirectUri: new URL(".", window.location.href).href,
    },
    cache: { cacheLocation: "sessionStorage" },
  });
  await msalApp.initialize();
  const result = await msalApp.handleRedirectPromise();
  if (result && result.account) msalApp.setActiveAccount(result.account);
  if (!msalApp.getActiveAccount()) {
    const [first] = msalApp.getAllAccounts();
    if (first) msalApp.setActiveAccount(first);
  }
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

export function signInMode() {
  return config.signin;
}

export function isSignedIn() {
  if (config.signin === "entra") return Boolean(msalApp && msalApp.getActiveAccount());
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

export async function getToken() {
  if (config.signin === "entra") {
    const account = msalApp && msalApp.getActiveAccount();
    if (!account) return null;
    const request = { scopes: config.scopes, account };
    try {
      return (await msalApp.acquireTokenSilent(request)).accessToken;
    } catch (error) {
      if (error instanceof window.msal.InteractionRequiredAuthError) {
        await msalApp.acquireTokenRedirect(request);  // navigates away; comes back signed in
      }
      throw error;
    }
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export async function signInWithEntra() {
  await msalApp.loginRedirect({ scopes: config.scopes });
}

export async function devOptions() {
  const response = await fetch(`${config.devSignin}/options`);
  if (!response.ok) throw new Error(`the dev sign-in is not available (HTTP ${response.status})`);
  return response.json();
}

export async function signInWithDevIssuer(choice) {
  const response = await fetch(`${config.devSignin}/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(choice),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || `sign-in failed (HTTP ${response.status})`);
    error.detail = error.message;
    throw error;
  }
  sessionStorage.setItem(TOKEN_KEY, body.access_token);
}

export async function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  if (config.signin === "entra" && msalApp) {
    await msalApp.logoutRedirect({ postLogoutRedirectUri: new URL(".", window.location.href).href });
  }
}

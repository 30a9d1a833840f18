// The console's entry point: configuration, sign-in, who am I, then one view per hash route.

import { api } from "./api.js";
import {
  devOptions, isSignedIn, signInMode, signInWithDevIssuer, signInWithEntra, signOut, startAuth,
} from "./auth.js";
import { renderChat } from "./chat.js";
import { renderDocuments } from "./documents.js";
import { renderOperations } from "./operations.js";
import { clear, clearErrors, h, showError } from "./ui.js";

const views = { documents: renderDocuments, chat: renderChat, operations: renderOperations };
const state = { me: null, leave: null };

async function boot() {
  const main = document.getElementById("main");
  try {
    const response = await fetch("config.json");
    await startAuth(await response.json());
  } catch (error) {
    clear(main).append(h("p", {}, `The console could not start: ${error.message}`));
    return;
  }
  document.getElementById("sign-out").addEventListener("click", async () => {
    await signOut();
    window.location.hash = "";
    window.location.reload();
  });
  if (!isSignedIn()) {
    renderSignIn(main);
    return;
  }
  try {
    state.me = await api("/api/me");
  } catch (error) {
    if (error.status === 401) {  // an expired or revoked token: sign in again
      await signOut();
      renderSignIn(main, error.detail);
      return;
    }
    clear(main);
    showError(error, "Who am I");
    return;
  }
  showIdentity(state.me);
  window.addEventListener("hashchange", route);
  route();
}

function showIdentity(me) {
  document.getElementById("who-name").textContent =
    `${me.user} · ${me.tenant} · ${me.roles.join(", ") || "no role"}`;
  document.getElementById("who").hidden = false;
  const nav = document.getElementById("nav");
  nav.hidden = false;
  for (const link of nav.querySelectorAll("[data-needs]")) {
    link.hidden = !me.permissions.includes(link.dataset.needs);
  }
}

function route() {
  const main = document.getElementById("main");
  const name = (window.location.hash.replace(/^#\/?/, "") || "documents").split("/")[0];
  const view = views[name] || views.documents;
  if (state.leave) state.leave();
  clearErrors();
  clear(main);
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  state.leave = view(main, state.me) || null;
  main.focus({ preventScroll: true });
}

function renderSignIn(main, reason) {
  clear(main);
  const mode = signInMode();
  const panel = h("section", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to docgate"));
  if (reason) panel.append(h("p", { class: "muted" }, reason));
  if (mode === "entra") {
    panel.append(
      h("p", {}, "Sign in with your organisation's Microsoft Entra ID account."),
      h("button", { type: "button", class: "primary", onclick: () => signInWithEntra() }, "Sign in"),
    );
  } else if (mode === "dev") {
    renderDevSignIn(panel);
  } else {
    panel.append(h("p", {}, "Sign-in is not configured: set WEB_CLIENT_ID (Entra ID) in the app's settings, " +
      "or run locally with AUTH_DEV_ISSUER=true."));
  }
  main.append(panel);
}

async function renderDevSignIn(panel) {
  let options;
  try {
    options = await devOptions();
  } catch (error) {
    panel.append(h("p", {}, error.message));
    return;
  }
  const roles = options.roles.map((role) =>
    h("label", { class: "check" },
      h("input", { type: "checkbox", name: "roles", value: role, checked: role === "admin" }), role));
  const form = h("form", { class: "stack" },
    h("p", { class: "muted" }, "Local development: the devhost's dev issuer signs a token for whoever you pick. " +
      "Azure refuses this sign-in."),
    h("label", { for: "dev-user" }, "User"),
    h("input", { id: "dev-user", name: "user", required: true, value: "alice", autocomplete: "username" }),
    h("label", { for: "dev-tenant" }, "Tenant"),
    h("select", { id: "dev-tenant", name: "tenant" },
      options.tenants.map((tenant) => h("option", { value: tenant }, tenant))),
    h("fieldset", {}, h("legend", {}, "Roles"), roles),
    h("label", { for: "dev-groups" }, "Groups (comma-separated)"),
    h("input", { id: "dev-groups", name: "groups", placeholder: "finance, legal" }),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    try {
      await signInWithDevIssuer({
        user: data.get("user"),
        tenant: data.get("tenant"),
        roles: data.getAll("roles"),
        groups: String(data.get("groups") || "").split(",").map((g) => g.trim()).filter(Boolean),
      });
      window.location.hash = "#/documents";
      window.location.reload();
    } catch (error) {
      showError(error, "Sign-in");
    }
  });
  panel.append(form);
}

boot();

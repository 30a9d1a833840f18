// Documents: drag-and-drop upload with per-file progress, live ingestion progress, failures in
// plain words, the ACL chosen at upload, delete with confirmation.

import { api, upload } from "./api.js";
import { confirmDialog, formatBytes, formatTime, h, showError } from "./ui.js";

const POLL_MS = 1000;
const ACTIVE = new Set(["queued", "running"]);
const STEP_WORDS = {
  queued: "waiting to start",
  validate: "checking the file",
  extract: "reading the pages",
  merge: "joining the pages",
  figures: "describing figures",
  chunk: "splitting into passages",
  embed: "embedding passages",
  index: "indexing",
  done: "done",
};

export function renderDocuments(main, me) {
  const canWrite = me.permissions.includes("documents:write");
  const rows = new Map();  // document id -> its <tr>
  const tbody = h("tbody");
  const empty = h("p", { class: "muted", hidden: true }, "No documents yet.");
  let timer = null;
  let stopped = false;

  const section = h("section", { "aria-labelledby": "documents-title" },
    h("h1", { id: "documents-title" }, "Documents"),
    canWrite ? uploader(onUploaded) : h("p", { class: "muted" },
      `You can read documents; uploading needs the documents:write permission (developer or admin role). ` +
      `Your roles: ${me.roles.join(", ") || "none"}.`),
    h("div", { class: "table-wrap" },
      h("table", { class: "documents" },
        h("caption", { class: "sr-only" }, "Your tenant's documents and their ingestion state"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Name"),
          h("th", { scope: "col" }, "State"),
          h("th", { scope: "col" }, "Pages"),
          h("th", { scope: "col" }, "Passages"),
          h("th", { scope: "col" }, "Access"),
          h("th", { scope: "col" }, "Updated"),
          h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
        tbody)),
    empty,
  );
  main.append(section);

  function onUploaded(created) {
    refreshOne(created.id);
  }

  function show(record) {
    const row = documentRow(record, canWrite, () => remove(record), () => changeAccess(record));
    const existing = rows.get(record.id);
    if (existing) existing.replaceWith(row);
    else tbody.prepend(row);
    rows.set(record.id, row);
    empty.hidden = rows.size > 0;
  }

  async function changeAccess(record) {
    const choice = await accessDialog(record);
    if (!choice) return;
    try {
      show(await api(`/api/documents/${record.id}/acl`, { method: "PUT", body: choice }));
    } catch (error) {
      showError(error, `Access to ${record.name}`);
    }
  }

  async function remove(record) {
    const ok = await confirmDialog(
      `Delete “${record.name}”? Its file, passages and cached answers that cite it are removed. This cannot be undone.`,
      "Delete");
    if (!ok) return;
    try {
      await api(`/api/documents/${record.id}`, { method: "DELETE" });
      rows.get(record.id)?.remove();
      rows.delete(record.id);
      empty.hidden = rows.size > 0;
    } catch (error) {
      showError(error, `Deleting ${record.name}`);
    }
  }

  async function refreshOne(id) {
    try {
      show(await api(`/api/documents/${id}`));
    } catch (error) {
      showError(error, "Document status");
    }
    schedule();
  }

  async function refreshAll() {
    try {
      const { documents } = await api("/api/documents");
      for (const record of documents) show(record);
      empty.hidden = rows.size > 0;
    } catch (error) {
      showError(error, "Documents");
    }
    schedule();
  }

  // Polls the status of documents still being ingested (live step and percent).
  function schedule() {
    if (stopped || timer) return;
    timer = setTimeout(async () => {
      timer = null;
      const active = [...rows.values()].filter((row) => ACTIVE.has(row.dataset.state));
      for (const row of active) {
        try {
          show(await api(`/api/documents/${row.dataset.id}`));
        } catch (error) {
          if (error.status === 404) { row.remove(); rows.delete(row.dataset.id); } else showError(error, "Document status");
        }
      }
      if ([...rows.values()].some((row) => ACTIVE.has(row.dataset.state))) schedule();
    }, POLL_MS);
  }

  refreshAll();
  return () => { stopped = true; clearTimeout(timer); };
}

function documentRow(record, canWrite, onDelete, onAccess) {
  const access = record.acl && !record.acl.tenant_wide
    ? [...(record.acl.users || []).map((u) => `user ${u}`), ...(record.acl.groups || []).map((g) => `group ${g}`)].join(", ")
    : "everyone in the tenant";
  return h("tr", { "data-id": record.id, "data-state": record.state },
    h("th", { scope: "row", class: "name" }, record.name),
    h("td", {}, stateCell(record)),
    h("td", {}, record.page_count ?? ""),
    h("td", {}, record.counts && record.counts.chunks !== undefined ? record.counts.chunks : ""),
    h("td", {}, access),
    h("td", {}, formatTime(record.updated)),
    h("td", { class: "actions" }, canWrite ? [
      ACTIVE.has(record.state) ? "" : h("button", { type: "button", class: "link", onclick: onAccess, "aria-label": `Access to ${record.name}` }, "Access"),
      h("button", { type: "button", class: "link danger", onclick: onDelete, "aria-label": `Delete ${record.name}` }, "Delete"),
    ] : ""),
  );
}

// Who may read a document, changed in a modal dialog; resolves {users, groups} or null.
function accessDialog(record) {
  const acl = record.acl || {};
  const current = acl.tenant_wide ? "tenant" : (acl.groups || []).length ? "groups" : "users";
  const kind = h("select", { id: "access-kind" },
    h("option", { value: "tenant", selected: current === "tenant" }, "Everyone in my tenant"),
    h("option", { value: "groups", selected: current === "groups" }, "Only these groups"),
    h("option", { value: "users", selected: current === "users" }, "Only these users"));
  const names = h("input", { id: "access-names", value: current === "tenant" ? "" : (acl[current] || []).join(", ") });
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": "access-title" },
      h("h2", { id: "access-title" }, `Who may read “${record.name}”`),
      h("div", { class: "stack" },
        h("label", { for: "access-kind" }, "Readers"), kind,
        h("label", { for: "access-names" }, "Names (comma-separated)"), names),
      h("div", { class: "actions" },
        h("button", { type: "button", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button", { type: "button", class: "primary", onclick: () => dialog.close("ok") }, "Save")));
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (dialog.returnValue !== "ok") return resolve(null);
      const listed = names.value.split(",").map((n) => n.trim()).filter(Boolean);
      if (kind.value === "tenant") return resolve({ users: [], groups: [] });
      resolve(kind.value === "groups" ? { users: [], groups: listed } : { users: listed, groups: [] });
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

function stateCell(record) {
  const label = h("span", { class: `state state-${record.state}` }, record.state);
  if (ACTIVE.has(record.state)) {
    const percent = Math.max(0, Math.min(100, record.percent || 0));
    const step = STEP_WORDS[record.step] || record.step || "";
    return h("div", { class: "progress-cell" }, label,
      h("progress", { max: 100, value: percent, "aria-label": `${record.name}: ${percent}%` }),
      h("span", { class: "muted small" }, `${step} · ${percent}%`));
  }
  if (record.state === "failed" && record.error) {
    const where = record.error.step ? ` (while ${STEP_WORDS[record.error.step] || record.error.step})` : "";
    return h("div", {}, label, h("p", { class: "reason" }, `${record.error.reason}${where}`));
  }
  return label;
}

function uploader(onUploaded) {
  const input = h("input", { type: "file", id: "file-input", multiple: true, class: "sr-only" });
  const aclKind = h("select", { id: "acl-kind", name: "acl-kind" },
    h("option", { value: "tenant" }, "Everyone in my tenant"),
    h("option", { value: "groups" }, "Only these groups"),
    h("option", { value: "users" }, "Only these users"));
  const aclNames = h("input", { id: "acl-names", placeholder: "finance, legal", disabled: true });
  aclKind.addEventListener("change", () => {
    aclNames.disabled = aclKind.value === "tenant";
    if (!aclNames.disabled) aclNames.focus();
  });
  const queue = h("ul", { class: "uploads", "aria-live": "polite" });
  const zone = h("div", { class: "dropzone", tabindex: 0, role: "button", "aria-describedby": "drop-help" },
    h("strong", {}, "Drop files here"),
    h("span", { id: "drop-help", class: "muted" }, " or press Enter to choose files (PDF, Office, images, text)"));

  function acl() {
    const names = aclNames.value.split(",").map((n) => n.trim()).filter(Boolean);
    if (aclKind.value === "tenant" || !names.length) return "";
    const kind = aclKind.value === "groups" ? "group" : "user";
    return names.map((n) => `${kind}:${n}`).join(",");
  }

  async function send(files) {
    const chosen = acl();
    if (aclKind.value !== "tenant" && !chosen) {
      showError({ detail: `name at least one ${aclKind.value === "groups" ? "group" : "user"}, or choose everyone` }, "Access");
      return;
    }
    await Promise.all([...files].map(async (file) => {
      const bar = h("progress", { max: 100, value: 0, "aria-label": `Uploading ${file.name}` });
      const status = h("span", { class: "muted small" }, "uploading");
      const item = h("li", {}, h("span", { class: "name" }, file.name), ` ${formatBytes(file.size)} `, bar, status);
      queue.append(item);
      try {
        const created = await upload(file, chosen, (fraction) => { bar.value = Math.round(fraction * 100); });
        status.textContent = "uploaded: ingestion started";
        onUploaded(created);
        setTimeout(() => item.remove(), 4000);
      } catch (error) {
        item.classList.add("failed");
        status.textContent = `failed: ${error.detail}`;
      }
    }));
  }

  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    send(event.dataTransfer.files);
  });
  input.addEventListener("change", () => { send(input.files); input.value = ""; });

  return h("div", { class: "card upload" },
    h("h2", {}, "Upload"),
    h("div", { class: "acl" },
      h("label", { for: "acl-kind" }, "Who may read them"), aclKind,
      h("label", { for: "acl-names", class: "sr-only" }, "Names"), aclNames),
    zone, input, queue);
}


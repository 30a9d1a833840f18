// Chat: multi-turn, streamed answers, citations that open the cited page in a side panel,
// each answer's model, tier, region, cost and cache state, stop and copy.

import { api, objectUrl, streamChat } from "./api.js";
import { clear, formatUsd, h, showError } from "./ui.js";

const conversation = [];  // {role, content} turns; kept while the tab lives

export function renderChat(main, me) {
  if (!me.permissions.includes("chat:execute")) {
    main.append(h("section", { class: "card", "aria-labelledby": "chat-title" },
      h("h1", { id: "chat-title" }, "Chat"),
      h("p", { class: "denied" },
        `You cannot chat: asking questions needs the chat:execute permission, which the user, ` +
        `developer and admin roles grant. You are signed in as ${me.user} with the role(s) ` +
        `${me.roles.join(", ") || "none"}. Ask your tenant admin for the user role.`)));
    return null;
  }
  const log = h("ol", { class: "messages", "aria-live": "polite", "aria-label": "Conversation" });
  const panel = h("aside", { class: "citation-panel", hidden: true, "aria-label": "Cited source", tabindex: -1 });
  const input = h("textarea", { id: "question", rows: 2, required: true, placeholder: "Ask about your documents…" });
  const sendButton = h("button", { type: "submit", class: "primary" }, "Ask");
  const stopButton = h("button", { type: "button", hidden: true }, "Stop");
  const newButton = h("button", { type: "button", class: "link" }, "New conversation");
  const form = h("form", { class: "ask" },
    h("label", { for: "question", class: "sr-only" }, "Question"), input, sendButton, stopButton);
  let controller = null;

  main.append(h("div", { class: "chat-layout" },
    h("section", { class: "chat", "aria-labelledby": "chat-title" },
      h("div", { class: "chat-head" }, h("h1", { id: "chat-title" }, "Chat"), newButton),
      log, form),
    panel));
  for (const turn of conversation) log.append(turnView(turn, panel));

  newButton.addEventListener("click", () => {
    conversation.length = 0;
    clear(log);
    panel.hidden = true;
    input.focus();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  stopButton.addEventListener("click", () => controller && controller.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question || controller) return;
    input.value = "";
    const asked = { role: "user", content: question };
    conversation.push(asked);
    log.append(turnView(asked, panel));
    const answer = { role: "assistant", content: "", pending: true };
    const view = turnView(answer, panel);
    log.append(view);
    controller = new AbortController();
    sendButton.hidden = true;
    stopButton.hidden = false;
    const text = view.querySelector(".text");
    try {
      const messages = conversation.map(({ role, content }) => ({ role, content }));
      const result = await streamChat(messages, (piece) => {
        answer.content += piece;
        text.textContent = answer.content;
        view.scrollIntoView({ block: "end" });
      }, controller.signal);
      Object.assign(answer, { content: result.answer, result, pending: false });
      conversation.push(answer);
      view.replaceWith(turnView(answer, panel));
    } catch (error) {
      conversation.pop();  // the question goes back: it was not answered
      if (error.name === "AbortError") {
        answer.stopped = true;
        answer.pending = false;
        view.replaceWith(turnView(answer, panel));
      } else {
        view.remove();
        showError(error, "Chat");
        input.value = question;
      }
    } finally {
      controller = null;
      sendButton.hidden = false;
      stopButton.hidden = true;
      input.focus();
    }
  });
  input.focus();
  return () => controller && controller.abort();
}

function turnView(turn, panel) {
  if (turn.role === "user") {
    return h("li", { class: "turn user" }, h("span", { class: "sr-only" }, "You: "), h("p", { class: "text" }, turn.content));
  }
  const item = h("li", { class: "turn assistant" + (turn.pending ? " pending" : "") },
    h("span", { class: "sr-only" }, "docgate: "),
    h("p", { class: "text" }, turn.content || (turn.pending ? "…" : "")));
  if (turn.stopped) item.append(h("p", { class: "muted small" }, "Stopped."));
  const result = turn.result;
  if (!result) return item;
  if (result.citations.length) {
    item.append(h("ol", { class: "citations", "aria-label": "Sources" },
      result.citations.map((citation) => h("li", {},
        h("button", { type: "button", class: "citation", onclick: () => openCitation(citation, panel) },
          `[${citation.number}] ${citation.document_name}, page ${citation.page}`)))));
  }
  const facts = [
    result.model, result.tier, result.region, formatUsd(result.cost_usd),
    result.cached ? "from cache" : "fresh",
  ].filter(Boolean).join(" · ");
  const copy = h("button", { type: "button", class: "link small" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(result.answer);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Copy failed (clipboard blocked)";
    }
    setTimeout(() => { copy.textContent = "Copy"; }, 2000);
  });
  item.append(h("div", { class: "answer-meta" }, h("span", { class: "muted small" }, facts), copy));
  if (result.warnings && result.warnings.length) {
    item.append(h("p", { class: "muted small" }, result.warnings.join(" ")));
  }
  return item;
}

async function openCitation(citation, panel) {
  clear(panel);
  panel.hidden = false;
  const close = h("button", { type: "button", class: "link", onclick: () => { panel.hidden = true; } }, "Close");
  panel.append(h("div", { class: "panel-head" },
    h("h2", {}, citation.document_name), close),
  h("p", { class: "muted" }, `Page ${citation.page}`));
  panel.focus();
  let page;
  try {
    page = await api(`/api/documents/${citation.document_id}/pages/${citation.page}`);
  } catch (error) {
    panel.append(h("p", { class: "denied" }, error.detail));
    return;
  }
  const passages = h("div", { class: "passages" });
  for (const passage of page.passages) passages.append(highlighted(passage.text, citation.quote));
  if (!page.passages.length) passages.append(h("p", { class: "muted" }, "No indexed passage on this page."));
  panel.append(h("h3", {}, "Passages"), passages);
  if (page.image_url) {
    const figure = h("figure", {}, h("figcaption", { class: "muted small" }, `Page ${page.page} of ${page.page_count ?? "?"}`));
    panel.append(figure);
    try {
      const url = await objectUrl(page.image_url);
      figure.prepend(h("img", { src: url, alt: `Page ${page.page} of ${page.document_name}`, class: "page-image" }));
    } catch (error) {
      figure.append(h("p", { class: "denied" }, error.detail));
    }
  }
  panel.querySelector("mark")?.scrollIntoView({ block: "center" });
}

// The passage with the cited quote marked (whitespace-insensitive match).
function highlighted(text, quote) {
  const paragraph = h("p", { class: "passage" });
  const needle = (quote || "").replace(/[.…]+$/, "").trim();
  const index = needle ? findLoosely(text, needle) : null;
  if (!index) return paragraph.append(text), paragraph;
  paragraph.append(text.slice(0, index.start), h("mark", {}, text.slice(index.start, index.end)), text.slice(index.end));
  return paragraph;
}

function findLoosely(text, needle) {
  const pattern = needle.split(/\s+/).map((word) => word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("\\s+");
  const match = new RegExp(pattern, "i").exec(text);
  return match ? { start: match.index, end: match.index + match[0].length } : null;
}

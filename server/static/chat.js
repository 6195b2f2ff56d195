/*
 * Daozhen chat page: plain browser JavaScript, no build step, no external resources.
 *
 * Speaks the websocket protocol "daozhen.chat.v1" (server/protocol.py, server/asyncapi.yaml) on
 * /ws/chat:
 *   client -> hello {protocol, lang, session_id?} | user_text {text} | answer {question_id, value}
 *             | locale {lang} | ping | pong
 *   server -> session {session_id, lang, resumed, history, pending_question}
 *             | card {message_id, card} | token {message_id, text} | question {message_id, question}
 *             | done {message_id, text, llm_used} | error {code, message, message_id?}
 *             | locale {lang, pending_question} | ping | pong
 * Every turn ends with exactly one "done" or "error". The session id and a transcript (with the
 * cards) live in localStorage so a reload or a dropped connection resumes the same conversation;
 * without a local transcript the server's history is shown. Server strings are inserted as text,
 * never as HTML.
 *
 * Pushes: when the service desk creates a patient (first booking) its reply carries
 * desk.patient_token once; the page keeps it in localStorage and holds /ws/patient?token=... open
 * (protocol notify.v1, server/notify.py): every notification is acked, shown at most once per
 * device (shown ids in localStorage) as a notice in the log, and kept in the transcript.
 * "New conversation" forgets the token.
 */
"use strict";

(() => {
  const PROTOCOL = "daozhen.chat.v1";
  const WS_PATH = "/ws/chat";
  const GUIDELINE_ROUTE = "/api/guidelines";
  const I18N_URL = "i18n.json"; // static files are served next to the page
  const KEY_SESSION = "daozhen.session_id";
  const KEY_LANG = "daozhen.lang";
  const KEY_HISTORY = "daozhen.history";
  const KEY_PATIENT_TOKEN = "daozhen.patient_token";
  const KEY_PUSH_SHOWN = "daozhen.push_shown"; // ids of notifications already shown on this device
  const PUSH_PATH = "/ws/patient";
  const PUSH_SHOWN_LIMIT = 500;
  const CLOSE_BAD_TOKEN = 4401; // server/notify.py: the token is unknown (e.g. the data was reset)
  const HISTORY_LIMIT = 200; // transcript items kept on this device
  const OUTBOX_LIMIT = 10; // turns kept while offline or while the previous turn runs
  const TURN_WATCHDOG_MS = 120000; // a turn with no done/error after this no longer blocks the next
  const RECONNECT_MAX_MS = 15000;
  const LEVELS = ["emergency_ambulance", "emergency", "urgent", "routine", "self_care"];
  const EMERGENCY_LEVELS = new Set(["emergency_ambulance", "emergency"]);

  // Minimal built-in strings so the page still works if i18n.json cannot be fetched.
  let strings = {
    zh: { error_generic: "抱歉，出了点问题。", html_lang: "zh-CN" },
    en: { error_generic: "Sorry, something went wrong.", html_lang: "en" },
  };

  const state = {
    lang: "zh",
    sessionId: null,
    ws: null,
    online: false,
    retries: 0,
    retryTimer: null,
    outbox: [], // user turns not yet sent: the server takes one turn at a time
    awaiting: false, // a turn was sent and its done/error has not arrived
    watchdog: null,
    history: [],
    groups: new Map(), // message_id -> {card, bubble, text}
    restoredFromHistory: false,
    titleCache: new Map(), // "doc/section/lang" -> Promise<section json>
    push: { ws: null, retries: 0, timer: null, rejected: false }, // the /ws/patient socket
  };

  const $ = (id) => document.getElementById(id);
  const els = {};

  // ---- storage (private browsing may forbid it: then the page just forgets on reload) -------
  function load(key) {
    try {
      return window.localStorage.getItem(key);
    } catch {
      return null;
    }
  }

  function save(key, value) {
    try {
      if (value === null || value === undefined) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch {
      /* storage unavailable or full: nothing to do */
    }
  }

  function saveHistory() {
    if (state.history.length > HISTORY_LIMIT) state.history = state.history.slice(-HISTORY_LIMIT);
    save(KEY_HISTORY, JSON.stringify({ session_id: state.sessionId, items: state.history }));
  }

  function loadHistory(sessionId) {
    try {
      const data = JSON.parse(load(KEY_HISTORY) || "null");
      if (data && data.session_id === sessionId && Array.isArray(data.items)) return data.items;
    } catch {
      /* a corrupt transcript is dropped */
    }
    return [];
  }

  // ---- strings --------------------------------------------------------------------------------
  function t(key, lang) {
    const table = strings[lang || state.lang] || {};
    if (key in table) return table[key];
    const other = strings[(lang || state.lang) === "zh" ? "en" : "zh"] || {};
    return key in other ? other[key] : key;
  }

  function applyStrings(root) {
    const scope = root || document;
    scope.querySelectorAll("[data-i18n]").forEach((el) => {
      el.textContent = t(el.dataset.i18n);
    });
    scope.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    });
    scope.querySelectorAll("[data-i18n-aria-label]").forEach((el) => {
      el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
    });
    scope.querySelectorAll("[data-i18n-typing]").forEach((el) => {
      el.dataset.typing = t("typing");
    });
  }

  function setLang(lang, { announce } = { announce: true }) {
    if (lang !== "zh" && lang !== "en") return;
    state.lang = lang;
    save(KEY_LANG, lang);
    document.documentElement.lang = t("html_lang");
    document.title = t("page_title");
    document.querySelectorAll(".lang-btn").forEach((btn) => {
      btn.setAttribute("aria-pressed", String(btn.dataset.lang === lang));
    });
    applyStrings();
    updateStatus();
    refreshPushNotices();
    if (announce) send({ type: "locale", lang }); // offline: the next hello carries it
  }

  // ---- connection -----------------------------------------------------------------------------
  function wsUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${WS_PATH}`;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch {
      scheduleReconnect();
      return;
    }
    state.ws = ws;
    ws.addEventListener("open", () => {
      const hello = { type: "hello", protocol: PROTOCOL, lang: state.lang };
      if (state.sessionId) hello.session_id = state.sessionId;
      ws.send(JSON.stringify(hello));
    });
    ws.addEventListener("message", (event) => {
      if (ws !== state.ws) return;
      if (typeof event.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return; // not ours to crash on
      }
      if (msg && typeof msg.type === "string") handleServerMessage(msg);
    });
    ws.addEventListener("close", () => {
      if (ws !== state.ws) return; // replaced on purpose (new chat)
      state.online = false;
      state.ws = null;
      if (state.awaiting || state.groups.size) showNotice(t("interrupted"), "error");
      state.awaiting = false; // the server cancels a turn whose client went away
      finishAllStreams();
      scheduleReconnect();
      updateStatus(); // after scheduling, so it reads "reconnecting"
    });
  }

  function scheduleReconnect() {
    clearTimeout(state.retryTimer);
    const delay = Math.min(RECONNECT_MAX_MS, 1000 * 2 ** Math.min(state.retries, 4));
    state.retries += 1;
    state.retryTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      old.close(1000);
    }
    state.online = false;
    state.retries = 0;
    updateStatus();
    connect();
  }

  function send(message) {
    const ws = state.ws;
    if (state.online && ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  // A user turn (user_text / answer) waits until the previous turn finished and we are online.
  function sendTurn(message) {
    state.outbox.push(message);
    if (state.outbox.length > OUTBOX_LIMIT) state.outbox.shift();
    if (!state.online) showNotice(t("queued"), "info");
    pump();
  }

  function pump() {
    if (state.awaiting || !state.online || !state.outbox.length) return;
    if (!send(state.outbox[0])) return;
    state.outbox.shift();
    state.awaiting = true;
    clearTimeout(state.watchdog);
    state.watchdog = setTimeout(turnFinished, TURN_WATCHDOG_MS);
  }

  function turnFinished() {
    clearTimeout(state.watchdog);
    state.awaiting = false;
    pump();
  }

  function updateStatus() {
    const el = els.status;
    if (!el) return;
    const key = state.online ? "status_online" : state.retries > 0 ? "status_offline" : "status_connecting";
    el.dataset.state = state.online ? "online" : state.retries > 0 ? "offline" : "connecting";
    el.dataset.i18n = key;
    el.textContent = t(key);
  }

  // ---- pushes to the patient: /ws/patient (notify.v1) -----------------------------------------
  function pushUrl(token) {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const query = `token=${encodeURIComponent(token)}&lang=${state.lang}`;
    return `${scheme}//${window.location.host}${PUSH_PATH}?${query}`;
  }

  function adoptPatientToken(token) {
    if (load(KEY_PATIENT_TOKEN) === token && state.push.ws) return;
    closePush();
    save(KEY_PATIENT_TOKEN, token);
    state.push.retries = 0;
    connectPush();
  }

  function connectPush() {
    clearTimeout(state.push.timer);
    const token = load(KEY_PATIENT_TOKEN);
    if (!token || state.push.ws) return;
    let ws;
    try {
      ws = new WebSocket(pushUrl(token));
    } catch {
      schedulePushReconnect();
      return;
    }
    state.push.ws = ws;
    state.push.rejected = false;
    ws.addEventListener("message", (event) => {
      if (ws !== state.push.ws || typeof event.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      if (msg.type === "ready") state.push.retries = 0;
      else if (msg.type === "notification") onNotification(ws, msg);
      else if (msg.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
      else if (msg.type === "error" && (msg.code === "bad_token" || msg.code === "auth_required")) {
        state.push.rejected = true;
      }
    });
    ws.addEventListener("close", (event) => {
      if (ws !== state.push.ws) return; // closed on purpose (new conversation, new token)
      state.push.ws = null;
      if (event.code === CLOSE_BAD_TOKEN || state.push.rejected) {
        save(KEY_PATIENT_TOKEN, null); // the server does not know this patient: retrying cannot help
        return;
      }
      schedulePushReconnect();
    });
  }

  function schedulePushReconnect() {
    clearTimeout(state.push.timer);
    const delay = Math.min(RECONNECT_MAX_MS, 1000 * 2 ** Math.min(state.push.retries, 4));
    state.push.retries += 1;
    state.push.timer = setTimeout(connectPush, delay);
  }

  function closePush() {
    clearTimeout(state.push.timer);
    const ws = state.push.ws;
    state.push.ws = null;
    if (ws) ws.close(1000);
  }

  function forgetPatient() {
    closePush();
    state.push.retries = 0;
    save(KEY_PATIENT_TOKEN, null);
    save(KEY_PUSH_SHOWN, null);
  }

  function shownPushIds() {
    try {
      const ids = JSON.parse(load(KEY_PUSH_SHOWN) || "[]");
      return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
    } catch {
      return [];
    }
  }

  function markPushShown(id) {
    const ids = shownPushIds();
    ids.push(id);
    save(KEY_PUSH_SHOWN, JSON.stringify(ids.slice(-PUSH_SHOWN_LIMIT)));
  }

  // Shown at most once per device (read afresh: another tab may have shown it), always acked:
  // an unacked notification comes back on the next connection.
  function onNotification(ws, msg) {
    const id = typeof msg.id === "string" ? msg.id : "";
    if (!id) return;
    if (!shownPushIds().includes(id)) {
      markPushShown(id);
      const payload = msg.payload && typeof msg.payload === "object" ? msg.payload : {};
      const item = { role: "push", id, kind: text(msg.kind), payload };
      renderPush(item);
      remember(item);
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", id }));
  }

  function shortTime(value) {
    const match = /^\d{4}-(\d{2})-(\d{2})T(\d{2}:\d{2})/.exec(text(value));
    return match ? `${match[1]}-${match[2]} ${match[3]}` : "";
  }

  // [label, title, body] of a notification, in the page language where the payload has both.
  function pushParts(kind, payload) {
    const lang = state.lang;
    const pick = (field) => text(payload[`${field}_${lang}`] || payload[`${field}_zh`] || payload[`${field}_en`]);
    switch (kind) {
      case "visit_step": {
        const g = payload.guidance && typeof payload.guidance === "object" ? payload.guidance : {};
        return [t("push_label_visit_step"), text(g.title), text(g.what_next)];
      }
      case "reminder":
      case "followup_question": {
        const late = payload.late === true ? t("push_late") : "";
        return [t("push_label_reminder"), pick("title") + late, pick("body")];
      }
      case "waitlist_promoted": {
        const at = shortTime(payload.appointment && payload.appointment.start);
        return [t("push_label_booking"), t("push_waitlist_promoted"), at];
      }
      case "appointment_cancelled": {
        const at = shortTime(payload.appointment && payload.appointment.start);
        return [t("push_label_booking"), t("push_appointment_cancelled"), at];
      }
      case "report_ready":
        return [t("push_label_report"), t("push_report_ready"), ""];
      default:
        return [t("push_label_other"), t("push_generic"), ""];
    }
  }

  function fillPush(node, item) {
    const [label, title, body] = pushParts(item.kind, item.payload || {});
    node.replaceChildren(
      el("strong", { class: "push-label" }, label),
      el("span", { class: "push-title" }, title),
      body ? el("span", { class: "push-body" }, body) : null,
    );
  }

  function renderPush(item) {
    const node = el("div", {
      class: "msg notice-push",
      role: "status",
      "data-kind": item.kind,
      "data-notification-id": item.id,
    });
    node.pushItem = item; // re-worded when the page language changes
    fillPush(node, item);
    return addToLog(node);
  }

  function refreshPushNotices() {
    if (!els.log) return;
    els.log.querySelectorAll(".notice-push").forEach((node) => {
      if (node.pushItem) fillPush(node, node.pushItem);
    });
  }

  // ---- server messages ------------------------------------------------------------------------
  function handleServerMessage(msg) {
    switch (msg.type) {
      case "session":
        onSession(msg);
        break;
      case "card":
        if (msg.card && typeof msg.card === "object") {
          renderCard(msg.message_id, msg.card);
          remember({ role: "card", id: msg.message_id, card: msg.card });
        }
        if (msg.desk && typeof msg.desk === "object") {
          const { patient_token: token, ...desk } = msg.desk; // the token stays out of the transcript
          if (typeof token === "string" && token) adoptPatientToken(token);
          renderDesk(msg.message_id, desk);
          remember({ role: "desk", id: msg.message_id, desk });
        }
        break;
      case "token":
        appendToken(msg.message_id, typeof msg.text === "string" ? msg.text : "");
        break;
      case "question":
        if (msg.question && typeof msg.question === "object") {
          showQuestion(msg.message_id, msg.question);
          remember({ role: "question", id: msg.message_id, question: msg.question });
        }
        break;
      case "done":
        finishReply(msg.message_id, typeof msg.text === "string" ? msg.text : null, msg.llm_used);
        turnFinished();
        break;
      case "error":
        onError(msg);
        turnFinished();
        break;
      case "locale":
        onLocale(msg);
        break;
      case "ping":
        send({ type: "pong" });
        break;
      default:
        break; // "pong" and anything newer than this page: ignored
    }
  }

  function onSession(msg) {
    const newId = typeof msg.session_id === "string" ? msg.session_id : null;
    const resumed = msg.resumed === true || (msg.resumed === undefined && newId === state.sessionId);
    if (state.sessionId && !resumed) {
      // The server no longer knows our conversation (expired or unknown): say so, start afresh.
      if (state.history.length) addSystem(null, "session_expired");
      deactivateQuestions();
      state.history = [];
    } else if (resumed && state.restoredFromHistory) {
      addSystem(null, "resumed");
    } else if (resumed && !state.history.length && Array.isArray(msg.history) && msg.history.length) {
      restoreServerHistory(msg.history); // e.g. local storage was cleared: show the server's lines
      addSystem(null, "resumed");
    }
    state.restoredFromHistory = false;
    state.sessionId = newId;
    save(KEY_SESSION, newId);
    saveHistory();
    if (resumed && msg.pending_question && typeof msg.pending_question === "object") {
      ensureQuestionShown(msg.pending_question);
    }
    state.online = true;
    state.retries = 0;
    updateStatus();
    if (msg.lang && msg.lang !== state.lang) send({ type: "locale", lang: state.lang });
    pump();
  }

  function onLocale(msg) {
    // The session now speaks msg.lang; the open question comes back reworded in that language.
    const q = msg.pending_question;
    if (!q || typeof q !== "object") return;
    const box = activeQuestionBox();
    if (box && box.dataset.questionId === text(q.id)) {
      const p = box.querySelector(".question-text");
      if (p) p.textContent = text(q.question);
    }
  }

  function onError(msg) {
    const code = typeof msg.code === "string" ? msg.code : "";
    if (msg.message_id !== undefined && msg.message_id !== null) finishStream(msg.message_id);
    if (code === "unknown_session") return; // the "session" message that follows explains it
    const known = code && strings[state.lang] && `error_${code}` in strings[state.lang];
    const serverText = typeof msg.message === "string" ? msg.message : "";
    showNotice(known ? t(`error_${code}`) : serverText || t("error_generic"), "error");
    if (code === "stale_question") deactivateQuestions();
  }

  // ---- rendering ------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [name, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (name === "class") node.className = value;
        else if (name === "text") node.textContent = value;
        else if (name === "i18n") {
          node.dataset.i18n = value;
          node.textContent = t(value);
        } else node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function nearBottom() {
    const log = els.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  }

  function addToLog(node, { scroll } = { scroll: true }) {
    const follow = scroll || nearBottom();
    els.log.append(node);
    if (follow) els.log.scrollTop = els.log.scrollHeight;
    return node;
  }

  function addSystem(text, i18nKey) {
    const node = el("p", { class: "msg msg-system" });
    if (i18nKey) {
      node.dataset.i18n = i18nKey;
      node.textContent = t(i18nKey);
    } else node.textContent = text;
    return addToLog(node);
  }

  function addUserBubble(text) {
    return addToLog(
      el(
        "div",
        { class: "msg msg-user" },
        el("span", { class: "who visually-hidden", i18n: "you" }),
        el("span", { class: "msg-text" }, text),
      ),
    );
  }

  function group(messageId) {
    const key = String(messageId);
    if (!state.groups.has(key)) state.groups.set(key, { card: null, bubble: null, text: "" });
    return state.groups.get(key);
  }

  function ensureBubble(messageId) {
    const g = group(messageId);
    if (!g.bubble) {
      // While empty, the text span shows "replying…" (CSS, from its data-typing attribute).
      const textNode = el("span", { class: "reply-text", "data-i18n-typing": "", "data-typing": t("typing") });
      g.bubble = el(
        "div",
        { class: "msg msg-bot", "aria-busy": "true", "data-message-id": String(messageId) },
        el("span", { class: "who visually-hidden", i18n: "assistant" }),
        textNode,
      );
      addToLog(g.bubble, { scroll: false });
    }
    return g.bubble;
  }

  function appendToken(messageId, text) {
    if (messageId === undefined || messageId === null) return;
    const bubble = ensureBubble(messageId);
    const g = group(messageId);
    g.text += text;
    const follow = nearBottom();
    bubble.querySelector(".reply-text").textContent = g.text;
    if (follow) els.log.scrollTop = els.log.scrollHeight;
  }

  function finishReply(messageId, finalText, llmUsed) {
    if (messageId === undefined || messageId === null) return;
    const g = group(messageId);
    const text = finalText !== null && finalText !== "" ? finalText : g.text;
    if (text) {
      renderReply(messageId, text, llmUsed);
      remember({ role: "bot", id: messageId, text, llm_used: llmUsed === true });
    } else if (g.bubble) {
      g.bubble.remove();
      g.bubble = null;
    }
    state.groups.delete(String(messageId));
  }

  function renderReply(messageId, text, llmUsed) {
    const bubble = ensureBubble(messageId);
    group(messageId).text = text;
    bubble.querySelector(".reply-text").textContent = text;
    bubble.setAttribute("aria-busy", "false");
    bubble.dataset.llmUsed = String(llmUsed === true);
    if (nearBottom()) els.log.scrollTop = els.log.scrollHeight;
  }

  function finishStream(messageId) {
    const g = state.groups.get(String(messageId));
    if (!g) return;
    if (g.bubble) {
      if (g.text) {
        g.bubble.setAttribute("aria-busy", "false");
        remember({ role: "bot", id: messageId, text: g.text, llm_used: false });
      } else g.bubble.remove();
    }
    state.groups.delete(String(messageId));
  }

  function finishAllStreams() {
    [...state.groups.keys()].forEach(finishStream);
  }

  // A card heading: fixed in the card's language when known, else following the UI language.
  function heading(key, lang) {
    return lang ? el("h3", { text: t(key, lang) }) : el("h3", { i18n: key });
  }

  function section(key, lang, ...content) {
    return el("section", null, heading(key, lang), ...content);
  }

  function text(value) {
    return typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
  }

  function renderCard(messageId, card, { restoring } = { restoring: false }) {
    const level = LEVELS.includes(card.level) ? card.level : "routine";
    const lang = card.lang === "zh" || card.lang === "en" ? card.lang : null;
    const label = text(card.level_label) || t(`level_${level}`, lang);
    const body = el("div", { class: "card-body" });
    const article = el(
      "article",
      {
        class: `card level-${level}`,
        "data-level": level,
        "data-message-id": messageId === undefined || messageId === null ? null : String(messageId),
        "data-lang": lang,
        "aria-label": `${t("card_label", lang)}: ${label}`,
        lang: lang ? t("html_lang", lang) : null,
      },
      el("p", { class: "card-level" }, label),
      body,
    );

    if (card.call_120 === true || EMERGENCY_LEVELS.has(level) || card.care_setting === "ambulance_ed") {
      const call = el("a", { class: "call-120", href: "tel:120" });
      if (lang) call.textContent = t("call_120_now", lang);
      else {
        call.dataset.i18n = "call_120_now";
        call.textContent = t("call_120_now");
      }
      body.append(call);
    }
    if (card.advice) body.append(section("what_to_do", lang, el("p", { class: "advice" }, text(card.advice))));

    const departments = Array.isArray(card.departments) ? card.departments : [];
    if (departments.length) {
      const list = el("ul", { class: "departments" });
      departments.forEach((d) => {
        const reason = text(d && d.reason);
        list.append(
          el(
            "li",
            { "data-department-id": text(d && d.id) },
            el("strong", { class: "dept-name" }, text(d && d.name) || text(d && d.id)),
            reason ? el("span", { class: "dept-reason" }, ` — ${reason}`) : null,
          ),
        );
      });
      body.append(section("departments", lang, list));
    }

    if (card.care_setting) {
      const key = `care_setting_${card.care_setting}`;
      const setting = el("p", { class: "care-setting", "data-care-setting": text(card.care_setting) });
      if (card.care_setting_label) setting.textContent = text(card.care_setting_label);
      else if (key in strings.zh) setting.textContent = t(key, lang);
      else setting.textContent = text(card.care_setting);
      body.append(section("care_setting", lang, setting));
    }

    const flags = Array.isArray(card.red_flags) ? card.red_flags : [];
    if (flags.length) {
      const list = el("ul", { class: "red-flag-list" });
      flags.forEach((f) => list.append(el("li", { "data-rule-id": text(f && f.rule_id) }, text(f && f.name))));
      const flagSection = section("red_flags", lang, list);
      flagSection.classList.add("red-flags");
      body.append(flagSection);
    }

    const warnings = Array.isArray(card.warnings) ? card.warnings.filter((w) => w && w.message) : [];
    if (warnings.length) {
      const list = el("ul", { class: "warning-list" });
      warnings.forEach((w) => list.append(el("li", { "data-code": text(w.code) }, text(w.message))));
      const warningSection = section("warnings", lang, list);
      warningSection.classList.add("warnings");
      body.append(warningSection);
    }

    if (card.uncertain) body.append(el("p", { class: "uncertain", text: t("uncertain", lang) }));

    const citations = Array.isArray(card.citations) ? card.citations : [];
    if (citations.length) {
      const list = el("ul", { class: "citation-list" });
      citations.forEach((c) => {
        if (!c || !c.doc_id || !c.section) return;
        list.append(el("li", null, citationLink(text(c.doc_id), text(c.section), lang || state.lang)));
      });
      body.append(section("citations", lang, list));
    }

    if (card.disclaimer) body.append(el("p", { class: "disclaimer" }, text(card.disclaimer)));

    deactivateQuestions();
    if (card.question && typeof card.question === "object" && card.question.question) {
      body.append(renderQuestion(card.question, lang, restoring));
    }

    const g = group(messageId);
    if (g.bubble) els.log.insertBefore(article, g.bubble); // tokens came first: card stays above prose
    else addToLog(article);
    g.card = article;
    if (!restoring) {
      ensureBubble(messageId); // "replying…" until the first token of the prose
      // Show the card from its top (level, 120 button), even if the prose after it runs long.
      article.scrollIntoView({ block: "start", behavior: "auto" });
    }
    return article;
  }

  // ---- service desk: slots to pick, the route with its floor plan, the visit's next steps ------
  function renderDesk(messageId, desk, { restoring } = { restoring: false }) {
    const kind = text(desk.kind);
    const body = el("div", { class: "card-body" });
    const box = el("article", { class: "card desk-card", "data-desk-kind": kind }, body);
    const options = Array.isArray(desk.options) ? desk.options : [];
    if (options.length) {
      body.append(heading("desk_slots", null));
      const replies = el("div", { class: "quick-replies", role: "group" });
      options.forEach((option) => {
        const button = el("button", {
          type: "button",
          class: "quick-reply desk-option",
          "data-slot-id": text(option.slot_id),
          text: text(option.label),
        });
        if (restoring) button.disabled = true;
        button.addEventListener("click", () => {
          if (button.disabled) return;
          deactivateQuestions();
          const choice = String(option.n);
          addUserBubble(text(option.label));
          remember({ role: "user", text: text(option.label) });
          sendTurn({ type: "user_text", text: choice });
        });
        replies.append(button);
      });
      body.append(replies);
    }
    const route = desk.route && typeof desk.route === "object" && !desk.route.error ? desk.route : null;
    if (route) {
      body.append(heading("desk_route", null), el("p", { class: "route-head", text: text(route.head) }));
      const list = el("ol", { class: "route-steps" });
      (Array.isArray(route.steps) ? route.steps : []).forEach((step) =>
        list.append(el("li", { text: text(step).replace(/^\d+\.\s*/, "") })),
      );
      body.append(list);
      if (route.floorplan_url) {
        body.append(el("img", { class: "floorplan", src: text(route.floorplan_url), alt: text(route.head) }));
      }
    }
    const steps = Array.isArray(desk.steps) ? desk.steps : [];
    if (steps.length) {
      const list = el("ol", { class: "visit-steps" });
      steps.forEach((step) => list.append(el("li", { text: text(step.text) })));
      body.append(heading("desk_steps", null), list);
    }
    if (!body.childElementCount) return;
    addToLog(box, { scroll: !restoring });
  }

  // A question sent on its own ("question" event or pending_question on resume): inside its
  // card when that card is on screen, else as a block of its own.
  function showQuestion(messageId, question, restoring) {
    if (!question || !question.question) return;
    const g = state.groups.get(String(messageId));
    const card = g && g.card;
    if (card && card.querySelector(`.question[data-question-id="${cssEscape(text(question.id))}"]`)) return;
    deactivateQuestions();
    const lang = card && (card.dataset.lang || null);
    const box = renderQuestion(question, lang, restoring);
    if (card) card.querySelector(".card-body").append(box);
    else addToLog(el("div", { class: "card question-card" }, el("div", { class: "card-body" }, box)));
  }

  function ensureQuestionShown(question) {
    const box = activeQuestionBox();
    if (box && box.dataset.questionId === text(question.id)) return;
    showQuestion(null, question, false);
  }

  function activeQuestionBox() {
    const boxes = els.log.querySelectorAll(".question");
    const last = boxes[boxes.length - 1];
    return last && last.querySelector(".quick-reply:not(:disabled)") ? last : null;
  }

  function cssEscape(value) {
    return window.CSS && CSS.escape ? CSS.escape(value) : value.replace(/["\\]/g, "\\$&");
  }

  function renderQuestion(question, lang, restoring) {
    const box = el(
      "div",
      { class: "question", "data-question-id": text(question.id), "data-kind": text(question.kind) },
      heading("question", lang),
      el("p", { class: "question-text" }, text(question.question)),
    );
    const replies = el("div", { class: "quick-replies", role: "group", "aria-label": text(question.question) });
    if (question.kind === "yes_no") {
      replies.append(
        quickReply(question, "yes", "answer_yes", lang),
        quickReply(question, "no", "answer_no", lang),
        quickReply(question, "unknown", "answer_unknown", lang),
      );
    } else {
      const hint = question.kind === "number" ? "number_hint" : "text_hint";
      box.append(el("p", lang ? { class: "hint", text: t(hint, lang) } : { class: "hint", i18n: hint }));
      replies.append(quickReply(question, "unknown", "answer_unknown", lang));
      if (!restoring) setTimeout(() => els.input.focus(), 0);
    }
    box.append(replies);
    return box;
  }

  function quickReply(question, value, labelKey, lang) {
    const attrs = { type: "button", class: "quick-reply", "data-value": value };
    if (lang) attrs.text = t(labelKey, lang);
    else attrs.i18n = labelKey;
    const button = el("button", attrs);
    button.addEventListener("click", () => {
      if (button.disabled) return;
      const label = button.textContent;
      button.setAttribute("aria-pressed", "true");
      deactivateQuestions();
      addUserBubble(label);
      remember({ role: "user", text: label });
      hideNotice();
      sendTurn({ type: "answer", question_id: text(question.id), value });
    });
    return button;
  }

  function deactivateQuestions() {
    els.log.querySelectorAll(".quick-reply:not(:disabled)").forEach((b) => {
      b.disabled = true;
    });
  }

  // ---- citations ------------------------------------------------------------------------------
  function guidelineUrl(docId, sectionId, lang) {
    return `${GUIDELINE_ROUTE}/${encodeURIComponent(docId)}/${encodeURIComponent(sectionId)}?lang=${lang}`;
  }

  function fetchSection(docId, sectionId, lang) {
    const key = `${docId}/${sectionId}/${lang}`;
    if (!state.titleCache.has(key)) {
      const request = fetch(guidelineUrl(docId, sectionId, lang), { headers: { Accept: "application/json" } })
        .then((response) => {
          if (!response.ok) throw new Error(`HTTP ${response.status}`);
          return response.json();
        })
        .catch((error) => {
          state.titleCache.delete(key); // retry next time
          throw error;
        });
      state.titleCache.set(key, request);
    }
    return state.titleCache.get(key);
  }

  function citationLink(docId, sectionId, lang) {
    const link = el(
      "a",
      {
        class: "citation-link",
        href: guidelineUrl(docId, sectionId, lang),
        "data-doc-id": docId,
        "data-section": sectionId,
      },
      `${docId} § ${sectionId}`,
    );
    link.addEventListener("click", (event) => {
      event.preventDefault();
      openCitation(docId, sectionId, lang);
    });
    // Friendlier label (document and section title) once the server tells us.
    fetchSection(docId, sectionId, lang)
      .then((data) => {
        const title = [data.title, data.section_title].filter(Boolean).join(" · ");
        if (title) link.textContent = title;
      })
      .catch(() => {});
    return link;
  }

  // A small, safe subset of Markdown for guideline text (paragraphs, "- " lists, | tables |,
  // **bold**), built as DOM nodes so nothing from the server is ever parsed as HTML.
  function inline(parent, line) {
    line.split(/(\*\*[^*]+\*\*)/).forEach((part) => {
      if (!part) return;
      if (part.startsWith("**") && part.endsWith("**") && part.length > 4) parent.append(el("strong", null, part.slice(2, -2)));
      else parent.append(document.createTextNode(part));
    });
    return parent;
  }

  function tableCells(row) {
    return row.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
  }

  function renderGuidelineText(container, source) {
    container.replaceChildren();
    const blocks = text(source).replace(/\r\n?/g, "\n").split(/\n\s*\n/);
    blocks.forEach((block) => {
      const lines = block.split("\n").filter((l) => l.trim() !== "");
      if (!lines.length) return;
      if (lines.every((l) => /^\s*\|/.test(l))) {
        const table = el("table");
        lines.forEach((row, index) => {
          if (/^\s*\|?[\s:|-]+\|?\s*$/.test(row)) return; // the |---|---| separator
          const tr = el("tr");
          tableCells(row).forEach((cell) => tr.append(inline(el(index === 0 ? "th" : "td"), cell)));
          table.append(tr);
        });
        container.append(el("div", { class: "table-wrap" }, table));
        return;
      }
      let list = null;
      let paragraph = null;
      lines.forEach((line) => {
        const item = /^\s*(?:[-*]|\d+[.)])\s+(.*)$/.exec(line);
        if (item) {
          if (!list) {
            list = el(/^\s*\d/.test(line) ? "ol" : "ul");
            container.append(list);
          }
          list.append(inline(el("li"), item[1]));
          paragraph = null;
        } else {
          list = null;
          if (paragraph) paragraph.append(el("br"));
          else {
            paragraph = el("p");
            container.append(paragraph);
          }
          inline(paragraph, line.trim());
        }
      });
    });
  }

  function formatSource(source) {
    if (!source) return "";
    if (typeof source === "string") return source;
    return [source.guideline, source.year, source.section].filter((x) => x !== undefined && x !== "").join(", ");
  }

  function openCitation(docId, sectionId, lang) {
    const dialog = els.dialog;
    els.citationTitle.dataset.i18n = "guideline";
    els.citationTitle.textContent = t("guideline");
    els.citationSectionTitle.textContent = "";
    els.citationText.textContent = t("loading");
    els.citationSources.textContent = "";
    if (!dialog.open) {
      if (typeof dialog.showModal === "function") dialog.showModal();
      else dialog.setAttribute("open", "");
    }
    fetchSection(docId, sectionId, lang || state.lang)
      .then((data) => {
        delete els.citationTitle.dataset.i18n;
        els.citationTitle.textContent = text(data.title) || t("guideline");
        els.citationSectionTitle.textContent = text(data.section_title);
        renderGuidelineText(els.citationText, data.text);
        const sources = Array.isArray(data.sources) ? data.sources.map(formatSource).filter(Boolean) : [];
        els.citationSources.textContent = sources.length ? `${t("sources")}: ${sources.join("; ")}` : "";
      })
      .catch(() => {
        els.citationText.textContent = t("citation_failed");
      });
  }

  function closeCitation() {
    if (els.dialog.open) {
      if (typeof els.dialog.close === "function") els.dialog.close();
      else els.dialog.removeAttribute("open");
    }
  }

  // ---- notices --------------------------------------------------------------------------------
  let noticeTimer = null;

  function showNotice(message, kind) {
    clearTimeout(noticeTimer);
    els.notice.textContent = message;
    els.notice.dataset.kind = kind || "error";
    els.notice.hidden = false;
    noticeTimer = setTimeout(hideNotice, kind === "info" ? 5000 : 12000);
  }

  function hideNotice() {
    clearTimeout(noticeTimer);
    els.notice.hidden = true;
    els.notice.textContent = "";
  }

  // ---- history --------------------------------------------------------------------------------
  function remember(item) {
    state.history.push(item);
    saveHistory();
  }

  function restoreHistory(items) {
    items.forEach((item) => {
      if (!item || typeof item !== "object") return;
      if (item.role === "user") addUserBubble(text(item.text));
      else if (item.role === "card" && item.card) renderCard(item.id, item.card, { restoring: true });
      else if (item.role === "desk" && item.desk) renderDesk(item.id, item.desk, { restoring: true });
      else if (item.role === "question" && item.question) showQuestion(item.id, item.question, true);
      else if (item.role === "push" && item.id) renderPush(item);
      else if (item.role === "bot") renderReply(item.id, text(item.text), item.llm_used);
    });
    state.groups.clear();
    // Only an unanswered question at the very end stays answerable.
    const last = items[items.length - 1];
    deactivateQuestions();
    if (last && last.role !== "user") {
      const boxes = els.log.querySelectorAll(".question");
      const lastBox = boxes[boxes.length - 1];
      if (lastBox) lastBox.querySelectorAll(".quick-reply").forEach((b) => (b.disabled = false));
    }
    state.history = items.slice();
    els.log.scrollTop = els.log.scrollHeight;
  }

  function restoreServerHistory(lines) {
    lines.forEach((line) => {
      if (!line || typeof line.text !== "string") return;
      if (line.role === "user") addUserBubble(line.text);
      else if (line.role === "assistant") {
        const bubble = el("div", { class: "msg msg-bot" }, el("span", { class: "who visually-hidden", i18n: "assistant" }));
        bubble.append(el("span", { class: "reply-text" }, line.text));
        addToLog(bubble);
      } else addSystem(line.text);
    });
  }

  function addWelcome() {
    addSystem(null, "welcome").classList.add("welcome");
  }

  function newConversation() {
    state.sessionId = null;
    state.history = [];
    state.groups.clear();
    state.outbox = [];
    state.awaiting = false;
    save(KEY_SESSION, null);
    save(KEY_HISTORY, null);
    forgetPatient();
    els.log.replaceChildren();
    hideNotice();
    addWelcome();
    reconnectNow();
    els.input.focus();
  }

  // ---- composer -------------------------------------------------------------------------------
  function submitMessage() {
    const value = els.input.value.trim();
    if (!value) {
      els.input.focus();
      return;
    }
    hideNotice();
    deactivateQuestions();
    addUserBubble(value);
    remember({ role: "user", text: value });
    sendTurn({ type: "user_text", text: value });
    els.input.value = "";
    autoGrow();
    els.input.focus();
  }

  function autoGrow() {
    els.input.style.height = "auto";
    els.input.style.height = `${Math.min(els.input.scrollHeight + 2, window.innerHeight * 0.3)}px`;
  }

  // ---- start ----------------------------------------------------------------------------------
  function initialLang() {
    const stored = load(KEY_LANG);
    if (stored === "zh" || stored === "en") return stored;
    const preferred = (navigator.languages && navigator.languages[0]) || navigator.language || "";
    return preferred.toLowerCase().startsWith("en") ? "en" : "zh";
  }

  async function loadStrings() {
    try {
      const response = await fetch(I18N_URL);
      if (response.ok) {
        const data = await response.json();
        if (data && data.zh && data.en) strings = data;
      }
    } catch {
      /* keep the built-in minimum */
    }
  }

  async function start() {
    els.log = $("log");
    els.status = $("conn-status");
    els.notice = $("notice");
    els.input = $("message-input");
    els.form = $("composer");
    els.dialog = $("citation-dialog");
    els.citationTitle = $("citation-title");
    els.citationSectionTitle = $("citation-section-title");
    els.citationText = $("citation-text");
    els.citationSources = $("citation-sources");

    await loadStrings();
    setLang(initialLang(), { announce: false });

    document.querySelectorAll(".lang-btn").forEach((btn) => {
      btn.addEventListener("click", () => setLang(btn.dataset.lang));
    });
    $("new-chat").addEventListener("click", newConversation);
    $("citation-close").addEventListener("click", closeCitation);
    els.dialog.addEventListener("click", (event) => {
      if (event.target === els.dialog) closeCitation(); // a tap on the backdrop
    });
    els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submitMessage();
    });
    els.input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter breaks the line; never while an IME is composing Chinese.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submitMessage();
      }
    });
    els.input.addEventListener("input", autoGrow);
    window.addEventListener("online", () => {
      if (!state.online) reconnectNow();
      if (!state.push.ws && load(KEY_PATIENT_TOKEN)) {
        state.push.retries = 0;
        connectPush();
      }
    });

    state.sessionId = load(KEY_SESSION);
    const items = state.sessionId ? loadHistory(state.sessionId) : [];
    addWelcome();
    if (items.length) {
      restoreHistory(items);
      state.restoredFromHistory = true;
    }
    connect();
    connectPush(); // a patient of an earlier booking gets what was queued while away
  }

  // Exposed for debugging in the browser console and for the end-to-end test.
  window.daozhenChat = { state, t };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/*
 * Daozhen child-fever pages: plain browser JavaScript, no build step, no external resources.
 *
 * This file has two parts:
 *   1. a small core shared with the clinician page (clinic.js): strings (i18n_fever.json, zh/en),
 *      the REST client for /api/fever (bearer token), the /ws/fever websocket with reconnects,
 *      DOM helpers, time formatting and the pre-consultation form renderer;
 *   2. the parent page (fever.html, body[data-page=parent]): account, children, the temperature
 *      diary (manual, Web Bluetooth, simulator), chart, colour banner, alerts, reminders, doses,
 *      symptoms, the form and the nurse callback.
 *
 * Thermometer frames (Bluetooth Health Thermometer, characteristic 0x2A1C) travel as hex over
 * the websocket as {"type":"ble","child_id","payload_hex"}; the server parses and de-duplicates
 * them (tools/ble_thermometer.py). The simulator builds the same frames here.
 * Server strings are always inserted as text, never as HTML.
 */
"use strict";

(() => {
  const API = "/api/fever";
  const WS_PATH = "/ws/fever";
  const I18N_URL = "i18n_fever.json";
  const KEY_LANG = "daozhen.lang"; // shared with the chat page
  const RECONNECT_MAX_MS = 15000;
  const COLOURS = ["green", "orange", "red"];

  // Minimal built-in strings so the pages still work if i18n_fever.json cannot be fetched.
  let strings = {
    zh: { html_lang: "zh-CN", error_generic: "抱歉，出了点问题。", call_120_now: "立即拨打 120" },
    en: { html_lang: "en", error_generic: "Sorry, something went wrong.", call_120_now: "Call 120 now" },
  };

  // ============================================================================ core helpers

  const $ = (id) => document.getElementById(id);

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
      /* private browsing: the page forgets on reload */
    }
  }

  function text(value) {
    return typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
  }

  // el(tag, attrs, ...children): attrs.text sets the text, attrs.i18n a string key; null/undefined skipped.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [name, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (name === "text") node.textContent = value;
        else if (name === "i18n") {
          node.dataset.i18n = value;
          node.textContent = core.t(value);
        } else node.setAttribute(name, value === true ? "" : value);
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    if (attrs) {
      for (const [name, value] of Object.entries(attrs)) {
        if (value !== null && value !== undefined) node.setAttribute(name, String(value));
      }
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // A server string that may come as {zh, en}.
  function local(value) {
    if (value && typeof value === "object" && ("zh" in value || "en" in value)) {
      return text(value[core.state.lang] || value.zh || value.en);
    }
    return text(value);
  }

  function pad(n) {
    return String(n).padStart(2, "0");
  }

  function toDate(value) {
    if (value instanceof Date) return value;
    if (typeof value !== "string" && typeof value !== "number") return null;
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function fmtTime(value, withDate) {
    const d = toDate(value);
    if (!d) return text(value);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return withDate || !sameDay ? `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}` : hm;
  }

  // ISO 8601 with the local offset, e.g. 2025-01-02T03:04:05+08:00 (what the API stores).
  function isoLocal(d) {
    const offset = -d.getTimezoneOffset();
    const sign = offset >= 0 ? "+" : "-";
    const abs = Math.abs(offset);
    return (
      `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:` +
      `${pad(d.getMinutes())}:${pad(d.getSeconds())}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
    );
  }

  // <input type=datetime-local> value -> ISO with offset; "" -> null (= now).
  function isoFromInput(value) {
    if (!value) return null;
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : isoLocal(d);
  }

  function randomKey() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ============================================================================ core: strings

  function t(key, lang) {
    const table = strings[lang || core.state.lang] || {};
    if (key in table) return table[key];
    const other = strings[(lang || core.state.lang) === "zh" ? "en" : "zh"] || {};
    return key in other ? other[key] : key;
  }

  // t() with {name} placeholders.
  function tf(key, params) {
    return t(key).replace(/\{(\w+)\}/g, (m, name) => (params && name in params ? text(params[name]) : m));
  }

  function applyStrings(root) {
    const scope = root || document;
    scope.querySelectorAll("[data-i18n]").forEach((node) => {
      node.textContent = t(node.dataset.i18n);
    });
    scope.querySelectorAll("[data-i18n-placeholder]").forEach((node) => {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    });
    scope.querySelectorAll("[data-i18n-aria-label]").forEach((node) => {
      node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
    });
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

  function initialLang() {
    const stored = load(KEY_LANG);
    if (stored === "zh" || stored === "en") return stored;
    const preferred = (navigator.languages && navigator.languages[0]) || navigator.language || "";
    return preferred.toLowerCase().startsWith("en") ? "en" : "zh";
  }

  function setLang(lang) {
    if (lang !== "zh" && lang !== "en") return;
    core.state.lang = lang;
    save(KEY_LANG, lang);
    document.documentElement.lang = t("html_lang");
    document.title = t(core.state.titleKey || "fever_page_title");
    document.querySelectorAll(".lang-btn").forEach((btn) => {
      btn.setAttribute("aria-pressed", String(btn.dataset.lang === lang));
    });
    applyStrings();
    updateStatus();
    core.state.onLang.forEach((fn) => fn(lang));
  }

  // ============================================================================ core: REST

  class ApiError extends Error {
    constructor(status, code, message, body) {
      super(message);
      this.status = status;
      this.code = code;
      this.body = body;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json", "Accept-Language": core.state.lang };
    if (core.state.token) headers.Authorization = `Bearer ${core.state.token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(`${API}${path}`, init);
    } catch {
      throw new ApiError(0, "network", t("error_network"), null);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = data && data.error && typeof data.error === "object" ? data.error : {};
      const detail = data && Array.isArray(data.detail) ? data.detail.map((d) => d && d.msg).join("; ") : "";
      const code = text(err.code) || (response.status === 401 ? "unauthorized" : `http_${response.status}`);
      const message = pickLang(text(err.message)) || detail || t(`error_${code}`) || t("error_generic");
      if (response.status === 401 && core.state.onUnauthorized) core.state.onUnauthorized();
      throw new ApiError(response.status, code, message, data);
    }
    return data;
  }

  // Server messages may carry both languages as "中文 / English": show the page's language.
  function pickLang(message) {
    const parts = message.split(" / ");
    if (parts.length !== 2) return message;
    const zhFirst = /[\u4e00-\u9fff]/.test(parts[0]) && !/[\u4e00-\u9fff]/.test(parts[1]);
    if (!zhFirst) return message;
    return core.state.lang === "zh" ? parts[0] : parts[1];
  }

  function errorText(error) {
    if (error instanceof ApiError) return error.message || t("error_generic");
    return t("error_generic");
  }

  // ============================================================================ core: websocket

  function wsUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}${WS_PATH}?token=${encodeURIComponent(core.state.token || "")}`;
  }

  function connect() {
    const s = core.state;
    clearTimeout(s.retryTimer);
    if (!s.token) return;
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch {
      scheduleReconnect();
      return;
    }
    s.ws = ws;
    ws.addEventListener("open", () => {
      if (ws !== s.ws) return;
      s.online = true;
      s.retries = 0;
      updateStatus();
      s.onOpen.forEach((fn) => fn());
    });
    ws.addEventListener("message", (event) => {
      if (ws !== s.ws || typeof event.data !== "string") return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      if (msg.type === "ping") {
        send({ type: "pong" });
        return;
      }
      s.onMessage.forEach((fn) => fn(msg));
    });
    ws.addEventListener("close", (event) => {
      if (ws !== s.ws) return; // replaced on purpose (logout)
      s.online = false;
      s.ws = null;
      if (event.code === 1008 || event.code === 4401 || event.code === 4403) {
        // Policy violation / bad token: the session is over, reconnecting would loop.
        if (s.onUnauthorized) s.onUnauthorized();
        updateStatus();
        return;
      }
      scheduleReconnect();
      updateStatus();
    });
  }

  function scheduleReconnect() {
    const s = core.state;
    clearTimeout(s.retryTimer);
    if (!s.token) return;
    const delay = Math.min(RECONNECT_MAX_MS, 1000 * 2 ** Math.min(s.retries, 4));
    s.retries += 1;
    s.retryTimer = setTimeout(connect, delay);
  }

  function disconnect() {
    const s = core.state;
    clearTimeout(s.retryTimer);
    if (s.ws) {
      const old = s.ws;
      s.ws = null;
      old.close(1000);
    }
    s.online = false;
    s.retries = 0;
    updateStatus();
  }

  function send(message) {
    const ws = core.state.ws;
    if (core.state.online && ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  function updateStatus() {
    const node = $("conn-status");
    if (!node) return;
    const s = core.state;
    let key = "status_signed_out";
    let stateName = "offline";
    if (s.token) {
      if (s.online) {
        key = "status_online";
        stateName = "online";
      } else if (s.retries > 0) key = "status_offline";
      else {
        key = "status_connecting";
        stateName = "connecting";
      }
    }
    node.dataset.state = stateName;
    node.dataset.i18n = key;
    node.textContent = t(key);
  }

  // ============================================================================ core: notices

  let noticeTimer = null;

  function showNotice(message, kind) {
    const node = $("notice");
    if (!node) return;
    clearTimeout(noticeTimer);
    node.textContent = message;
    node.dataset.kind = kind || "error";
    node.hidden = false;
    noticeTimer = setTimeout(hideNotice, kind === "info" ? 6000 : 12000);
  }

  function hideNotice() {
    const node = $("notice");
    if (!node) return;
    clearTimeout(noticeTimer);
    node.hidden = true;
    node.textContent = "";
  }

  // ============================================================================ core: accounts

  function setSession(data, storageKey) {
    const s = core.state;
    s.token = text(data.token) || null;
    s.role = text(data.role) || null;
    s.accountId = data.account_id === undefined ? null : text(data.account_id);
    save(storageKey, s.token ? JSON.stringify({ token: s.token, role: s.role, account_id: s.accountId }) : null);
  }

  function restoreSession(storageKey) {
    try {
      const data = JSON.parse(load(storageKey) || "null");
      if (data && typeof data.token === "string" && data.token) {
        core.state.token = data.token;
        core.state.role = text(data.role) || null;
        core.state.accountId = data.account_id === undefined ? null : text(data.account_id);
        return true;
      }
    } catch {
      /* a corrupt entry is dropped */
    }
    save(storageKey, null);
    return false;
  }

  // Log-in and sign-up forms with tabs (same markup on both pages).
  function bindAuth({ role, onSignedIn, signupExtra }) {
    const tabs = { login: $("tab-login"), signup: $("tab-signup") };
    const forms = { login: $("login-form"), signup: $("signup-form") };
    const show = (which) => {
      for (const name of ["login", "signup"]) {
        tabs[name].setAttribute("aria-selected", String(name === which));
        forms[name].hidden = name !== which;
      }
    };
    tabs.login.addEventListener("click", () => show("login"));
    tabs.signup.addEventListener("click", () => show("signup"));

    forms.login.addEventListener("submit", async (event) => {
      event.preventDefault();
      hideNotice();
      const button = forms.login.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const data = await api("POST", "/login", {
          username: $("login-username").value.trim(),
          password: $("login-password").value,
        });
        onSignedIn(data);
      } catch (error) {
        showNotice(errorText(error), "error");
      } finally {
        button.disabled = false;
      }
    });

    forms.signup.addEventListener("submit", async (event) => {
      event.preventDefault();
      hideNotice();
      const button = forms.signup.querySelector("button[type=submit]");
      button.disabled = true;
      const body = {
        role,
        username: $("signup-username").value.trim(),
        password: $("signup-password").value,
        display_name: $("signup-display").value.trim(),
        lang: core.state.lang,
        ...signupExtra(),
      };
      try {
        const data = await api("POST", "/accounts", body);
        onSignedIn(data);
      } catch (error) {
        showNotice(errorText(error), "error");
      } finally {
        button.disabled = false;
      }
    });
  }

  // ============================================================================ core: form view

  const FORM_ORDER = [
    "child",
    "child_name",
    "name",
    "age",
    "age_text",
    "age_months",
    "sex",
    "weight_kg",
    "allergies",
    "conditions",
    "current_colour",
    "colour",
    "onset",
    "fever_onset",
    "fever_days",
    "peak",
    "peak_c",
    "latest",
    "pattern",
    "symptoms",
    "doses",
    "readings",
    "colour_history",
  ];
  const FORM_HIDDEN = new Set(["form_id", "id", "child_id", "account_id", "family_id", "clinic_id", "lang"]);
  const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;

  function fieldLabel(key) {
    const name = `field_${key}`;
    const label = t(name);
    return label === name ? key.replace(/_/g, " ") : label;
  }

  function scalarText(key, value) {
    if (value === null || value === undefined || value === "") return "—";
    if (typeof value === "boolean") return t(value ? "yes" : "no");
    if (typeof value === "string" && ISO_RE.test(value)) return fmtTime(value, true);
    if (typeof value === "string" && COLOURS.includes(value) && /colou?r/.test(key)) return t(`colour_${value}`);
    return text(value);
  }

  // One line for an object inside a list: "10:30 · 38.6 °C · axillary".
  function compactObject(obj) {
    if ("zh" in obj || "en" in obj) return local(obj);
    const parts = [];
    for (const [key, value] of Object.entries(obj)) {
      if (FORM_HIDDEN.has(key) || value === null || value === undefined || value === "") continue;
      if (typeof value === "object") {
        const inner = Array.isArray(value) ? value.map((v) => (typeof v === "object" && v ? compactObject(v) : text(v))).join(", ") : compactObject(value);
        if (inner) parts.push(`${fieldLabel(key)}: ${inner}`);
      } else if (/(^|_)(time|at|date)$|^time|_at$/.test(key) || (typeof value === "string" && ISO_RE.test(value))) {
        parts.unshift(scalarText(key, value));
      } else parts.push(`${fieldLabel(key)}: ${scalarText(key, value)}`);
    }
    return parts.join(" · ");
  }

  function valueNode(key, value, depth) {
    if (Array.isArray(value)) {
      if (!value.length) return el("span", { class: "muted", text: "—" });
      const list = el("ul", { class: "field-list" });
      value.forEach((item) => {
        const line = item && typeof item === "object" ? compactObject(item) : scalarText(key, item);
        const li = el("li", null, line);
        if (item && typeof item === "object" && COLOURS.includes(item.colour)) li.dataset.colour = item.colour;
        list.append(li);
      });
      return list;
    }
    if (value && typeof value === "object") {
      if ("zh" in value || "en" in value) return document.createTextNode(local(value));
      if (depth >= 1) return document.createTextNode(compactObject(value));
      const dl = el("dl", { class: "fields nested" });
      appendFields(dl, value, depth + 1);
      return dl;
    }
    const node = el("span", null, scalarText(key, value));
    if (typeof value === "string" && COLOURS.includes(value)) {
      node.className = `colour-chip colour-${value}`;
    }
    return node;
  }

  function appendFields(dl, obj, depth) {
    const keys = Object.keys(obj).filter((k) => !FORM_HIDDEN.has(k));
    keys.sort((a, b) => {
      const ia = FORM_ORDER.indexOf(a);
      const ib = FORM_ORDER.indexOf(b);
      return (ia < 0 ? 999 : ia) - (ib < 0 ? 999 : ib);
    });
    keys.forEach((key) => {
      dl.append(el("dt", { "data-field": key }, fieldLabel(key)), el("dd", { "data-field": key }, valueNode(key, obj[key], depth)));
    });
  }

  // ---- the pre-consultation form as built by the server (server/fever/forms.py) -------------
  function readingLine(r) {
    if (!r || typeof r !== "object") return "—";
    const value = typeof r.value_c === "number" ? `${r.value_c.toFixed(1)} °C` : "?";
    const site = r.site ? t(`site_${r.site}`) : "";
    return [value, site, r.time ? fmtTime(r.time, true) : "", r.source === "ble" ? "BLE" : ""].filter(Boolean).join(" · ");
  }

  function doseLine(d) {
    const amount = [d.mg ? `${d.mg} mg` : "", d.ml ? `${d.ml} ml` : ""].filter(Boolean).join(" / ");
    return [d.time ? fmtTime(d.time, true) : "", text(d.drug), amount].filter(Boolean).join(" · ");
  }

  function listNode(items, line, attrs) {
    if (!items || !items.length) return el("span", { class: "muted", i18n: "none_recorded" });
    return el("ul", { class: "field-list" }, ...items.map((item) => el("li", attrs ? attrs(item) : null, line(item))));
  }

  function chip(colour, label) {
    return el("span", { class: `colour-chip colour-${COLOURS.includes(colour) ? colour : "none"}`, "data-colour": colour || "none" }, label || t(`colour_${colour}`));
  }

  function ageText(birthDate) {
    const born = toDate(`${text(birthDate)}T00:00:00`);
    if (!born) return "";
    const now = new Date();
    let months = (now.getFullYear() - born.getFullYear()) * 12 + (now.getMonth() - born.getMonth());
    if (now.getDate() < born.getDate()) months -= 1;
    if (months < 1) {
      const days = Math.max(0, Math.floor((now - born) / 86400000));
      return tf("age_days", { n: days });
    }
    if (months < 24) return tf("age_months", { n: months });
    const years = Math.floor(months / 12);
    const rest = months % 12;
    return rest ? tf("age_years_months", { y: years, m: rest }) : tf("age_years", { n: years });
  }

  // Fever duration in days as people say it: "5 小时" under a day, "2.5 天" after.
  function feverDuration(days) {
    if (days < 1) return tf("fever_hours_n", { n: Math.max(1, Math.round(days * 24)) });
    return tf("fever_days_n", { n: Math.round(days * 10) / 10 });
  }

  function formSummary(form) {
    if (!form || typeof form !== "object") return "";
    if (form.summary) return local(form.summary);
    const parts = [];
    const child = form.child || {};
    if (child.birth_date || child.age_text) parts.push(child.birth_date ? ageText(child.birth_date) : local(child.age_text));
    if (form.weight_kg) parts.push(`${form.weight_kg} kg`);
    if (form.peak && typeof form.peak.value_c === "number") parts.push(`${t("field_peak")} ${form.peak.value_c.toFixed(1)} °C`);
    if (typeof form.fever_days === "number") parts.push(tf("fever_for", { d: feverDuration(form.fever_days) }));
    const features = form.current && Array.isArray(form.current.features) ? form.current.features.map(local).filter(Boolean) : [];
    if (features.length) parts.push(features.join("、"));
    return parts.join(" · ");
  }

  function renderPreconsultation(dl, form) {
    const row = (key, node) => dl.append(el("dt", { "data-field": key }, fieldLabel(key)), el("dd", { "data-field": key }, node));
    const child = form.child && typeof form.child === "object" ? form.child : {};
    const sex = child.sex ? t(`sex_${child.sex}`) : "";
    const age = child.birth_date ? ageText(child.birth_date) : local(child.age_text);
    row("child", el("span", null, [text(child.name), age, sex].filter(Boolean).join(" · ")));
    row("weight_kg", el("span", null, form.weight_kg ? `${form.weight_kg} kg` : t("not_given")));
    row("allergies", el("span", null, Array.isArray(form.allergies) && form.allergies.length ? form.allergies.join("、") : t("none_known")));
    row("conditions", el("span", null, Array.isArray(form.conditions) && form.conditions.length ? form.conditions.map((c) => (t(`cond_${c}`) === `cond_${c}` ? c : t(`cond_${c}`))).join("、") : t("none_known")));
    if (form.current && typeof form.current === "object") {
      const current = el("div", null, chip(form.current.colour, text(form.current.label) || t(`colour_${form.current.colour}`)));
      const features = Array.isArray(form.current.features) ? form.current.features.map(local).filter(Boolean) : [];
      if (features.length) current.append(el("ul", { class: "field-list" }, ...features.map((f) => el("li", null, f))));
      row("current_colour", current);
    }
    const onset = form.onset && form.onset.time ? `${fmtTime(form.onset.time, true)}${form.onset.source ? ` (${t(`onset_${form.onset.source}`)})` : ""}` : t("not_given");
    row("onset", el("span", null, onset));
    row("peak", el("span", null, form.peak ? readingLine(form.peak) : t("not_given")));
    row("latest", el("span", null, form.latest ? readingLine(form.latest) : t("not_given")));
    if (typeof form.fever_days === "number") row("fever_days", el("span", null, feverDuration(form.fever_days)));
    if (form.pattern && typeof form.pattern === "object") {
      const pattern = el("div", null, local(form.pattern.text));
      const trends = Array.isArray(form.pattern.trends) ? form.pattern.trends.map(local).filter(Boolean) : [];
      if (trends.length) pattern.append(el("ul", { class: "field-list" }, ...trends.map((tr) => el("li", null, tr))));
      row("pattern", pattern);
    }
    row("symptoms", listNode(form.symptoms, (s) => [s.time ? fmtTime(s.time, true) : "", text(s.text)].filter(Boolean).join(" · ")));
    row("doses", listNode(form.doses, doseLine));
    row(
      "colour_history",
      listNode(
        form.colour_history,
        (c) => el("span", null, chip(c.colour), " ", [c.time ? fmtTime(c.time, true) : "", text(c.label)].filter(Boolean).join(" · ")),
        (c) => ({ "data-colour": c.colour }),
      ),
    );
    const readings = Array.isArray(form.readings) ? form.readings : [];
    row("readings", readings.length ? el("details", null, el("summary", null, tf("readings_n", { n: readings.length })), listNode(readings, readingLine)) : el("span", { class: "muted", i18n: "none_recorded" }));
    if (form.note) row("note", el("span", null, text(form.note)));
  }

  function renderForm(dl, form) {
    dl.replaceChildren();
    if (!form || typeof form !== "object") return;
    if (form.child && typeof form.child === "object" && "pattern" in form) renderPreconsultation(dl, form);
    else appendFields(dl, form, 0);
  }

  // The colour a form or callback carries, wherever the server put it.
  function colourOf(item) {
    if (!item || typeof item !== "object") return null;
    const candidates = [
      item.colour,
      item.current_colour,
      item.current && item.current.colour,
      item.grade && item.grade.colour,
      item.current_grade && item.current_grade.colour,
      item.form && colourOf(item.form),
      item.child && item.child.colour,
    ];
    return candidates.find((c) => COLOURS.includes(c)) || null;
  }

  // ============================================================================ core export

  const core = {
    state: {
      lang: "zh",
      titleKey: null,
      token: null,
      role: null,
      accountId: null,
      ws: null,
      online: false,
      retries: 0,
      retryTimer: null,
      onMessage: [],
      onOpen: [],
      onLang: [],
      onUnauthorized: null,
    },
    $,
    el,
    svg,
    t,
    tf,
    local,
    text,
    fmtTime,
    isoLocal,
    isoFromInput,
    randomKey,
    applyStrings,
    loadStrings,
    initialLang,
    setLang,
    api,
    ApiError,
    errorText,
    connect,
    disconnect,
    send,
    updateStatus,
    showNotice,
    hideNotice,
    setSession,
    restoreSession,
    bindAuth,
    renderForm,
    formSummary,
    feverDuration,
    ageText,
    pickLang,
    colourOf,
    COLOURS,
  };
  window.daozhenFeverCore = core;

  // ============================================================================ BLE frames

  // IEEE-11073 32-bit FLOAT: signed 24-bit mantissa (low 3 bytes), signed 8-bit exponent.
  function encodeFloat32(value, exponent = -1) {
    const mantissa = Math.round(value * 10 ** -exponent);
    if (mantissa > 0x7ffffd || mantissa < -0x7ffffd) throw new RangeError("mantissa out of range");
    return (((exponent & 0xff) << 24) | (mantissa & 0xffffff)) >>> 0;
  }

  // Temperature-type codes of the Health Thermometer service for our measurement sites.
  const TYPE_CODE = { axillary: 1, ear: 9, oral: 6, rectal: 7 }; // armpit, tympanum, mouth, rectum

  // One 0x2A1C Temperature Measurement frame: flags, FLOAT, optional timestamp, optional type.
  function encodeTemperatureFrame({ value, unit = "C", time = null, site = null }) {
    let flags = 0;
    if (unit === "F") flags |= 0x01;
    if (time) flags |= 0x02;
    const typeCode = site && TYPE_CODE[site];
    if (typeCode) flags |= 0x04;
    const bytes = new Uint8Array(5 + (time ? 7 : 0) + (typeCode ? 1 : 0));
    const view = new DataView(bytes.buffer);
    view.setUint8(0, flags);
    view.setUint32(1, encodeFloat32(value), true);
    let offset = 5;
    if (time) {
      // The device clock has no zone: local wall-clock time, like a real thermometer.
      view.setUint16(offset, time.getFullYear(), true);
      view.setUint8(offset + 2, time.getMonth() + 1);
      view.setUint8(offset + 3, time.getDate());
      view.setUint8(offset + 4, time.getHours());
      view.setUint8(offset + 5, time.getMinutes());
      view.setUint8(offset + 6, time.getSeconds());
      offset += 7;
    }
    if (typeCode) view.setUint8(offset, typeCode);
    return bytes;
  }

  function toHex(bytes) {
    const view = bytes instanceof DataView ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
    return Array.from(view, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  core.ble = { encodeFloat32, encodeTemperatureFrame, toHex };

  // ============================================================================ parent page

  const KEY_SESSION = "daozhen.fever.session";
  const KEY_CHILD = "daozhen.fever.child";
  const SIM_STEP_MS = 350; // between simulated notifications
  const SIM_SPACING_MIN = 10; // device clock minutes between simulated measurements

  const page = {
    children: [],
    childId: null,
    timeline: null,
    grade: null,
    reminders: new Map(), // key -> reminder
    draft: null, // {form_id, form, status, key}
    refreshTimer: null,
    simRunning: false,
    ble: { device: null, characteristic: null, retries: 0 },
  };

  function currentChild() {
    return page.children.find((c) => text(c.id ?? c.child_id) === page.childId) || null;
  }

  function childIdOf(child) {
    return text(child && (child.id ?? child.child_id));
  }

  // ---- account ----------------------------------------------------------------------------
  function showSignedIn(signedIn) {
    $("auth-section").hidden = signedIn;
    $("child-section").hidden = !signedIn;
    $("logout-btn").hidden = !signedIn;
    if (!signedIn) $("child-work").hidden = true;
  }

  function onSignedIn(data) {
    if (text(data.role) && text(data.role) !== "family") {
      showNotice(t("wrong_role_family"), "error");
      return;
    }
    core.setSession(data, KEY_SESSION);
    $("login-password").value = "";
    $("signup-password").value = "";
    showSignedIn(true);
    core.connect();
    updateStatus();
    loadChildren();
  }

  function logout() {
    if (core.state.token) api("POST", "/logout", {}).catch(() => {}); // revoke; signed out here anyway
    core.setSession({}, KEY_SESSION);
    save(KEY_CHILD, null);
    core.disconnect();
    page.children = [];
    page.childId = null;
    page.timeline = null;
    page.reminders.clear();
    page.draft = null;
    showSignedIn(false);
    hideAlert();
  }

  // ---- children ---------------------------------------------------------------------------
  async function loadChildren(selectId) {
    try {
      const data = await api("GET", "/children");
      page.children = Array.isArray(data) ? data : Array.isArray(data && data.children) ? data.children : [];
    } catch (error) {
      if (error.status !== 401) showNotice(errorText(error), "error");
      return;
    }
    const wanted = selectId || load(KEY_CHILD);
    const ids = page.children.map(childIdOf);
    page.childId = ids.includes(wanted) ? wanted : ids[0] || null;
    renderChildSelect();
    $("add-child").open = !page.children.length;
    selectChild(page.childId);
  }

  function renderChildSelect() {
    const select = $("child-select");
    select.replaceChildren();
    if (!page.children.length) {
      select.append(el("option", { value: "", i18n: "no_children" }));
      select.disabled = true;
      return;
    }
    select.disabled = false;
    page.children.forEach((child) => {
      const id = childIdOf(child);
      select.append(el("option", { value: id, selected: id === page.childId }, text(child.name)));
    });
  }

  function renderChildSummary() {
    const child = currentChild();
    const node = $("child-summary");
    if (!child) {
      node.textContent = "";
      return;
    }
    const parts = [ageText(child.birth_date)];
    if (child.weight_kg) parts.push(`${child.weight_kg} kg`);
    const allergies = Array.isArray(child.allergies) ? child.allergies.join("、") : text(child.allergies);
    if (allergies) parts.push(`${t("allergies_short")}: ${allergies}`);
    node.textContent = parts.filter(Boolean).join(" · ");
  }

  function selectChild(id) {
    page.childId = id || null;
    save(KEY_CHILD, page.childId);
    page.draft = null;
    $("form-review").hidden = true;
    $("form-status").textContent = "";
    $("callback-status").textContent = "";
    $("dose-result").hidden = true;
    page.reminders.clear();
    renderReminders();
    renderChildSummary();
    $("child-work").hidden = !page.childId;
    if (page.childId) refreshTimeline();
  }

  async function addChild(event) {
    event.preventDefault();
    hideNotice();
    const form = $("child-form");
    const weight = $("child-weight").value;
    const allergies = $("child-allergies")
      .value.split(/[,，、;；]/)
      .map((s) => s.trim())
      .filter(Boolean);
    const body = {
      name: $("child-name").value.trim(),
      birth_date: $("child-birth").value,
      allergies,
      conditions: Array.from(form.querySelectorAll("input[name=conditions]:checked"), (c) => c.value),
    };
    if ($("child-sex").value) body.sex = $("child-sex").value;
    if (weight) body.weight_kg = Number(weight);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const child = await api("POST", "/children", body);
      form.reset();
      $("add-child").open = false;
      showNotice(tf("child_added", { name: text(child && child.name) || body.name }), "info");
      await loadChildren(childIdOf(child));
    } catch (error) {
      showNotice(errorText(error), "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---- timeline ---------------------------------------------------------------------------
  function scheduleRefresh(delay = 150) {
    clearTimeout(page.refreshTimer);
    page.refreshTimer = setTimeout(refreshTimeline, delay);
  }

  async function refreshTimeline() {
    clearTimeout(page.refreshTimer);
    const id = page.childId;
    if (!id) return;
    let data;
    try {
      data = await api("GET", `/children/${encodeURIComponent(id)}/timeline`);
    } catch (error) {
      if (error.status !== 401) showNotice(errorText(error), "error");
      return;
    }
    if (id !== page.childId) return; // another child was picked meanwhile
    page.timeline = data || {};
    drawChart();
    renderDiary();
    page.reminders.clear(); // the server's list is the truth (re-planned after every entry)
    (Array.isArray(data && data.reminders) ? data.reminders : []).forEach((r) => rememberReminder(r));
    renderReminders();
    renderGrade(data && data.current_grade ? data.current_grade : null);
  }

  // Accessors tolerant of field names: a reading's °C value and its time.
  function readingValue(r) {
    const v = r.value_c ?? r.celsius ?? r.temperature_c ?? r.value;
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  function itemTime(item) {
    return toDate(item.time ?? item.measured_at ?? item.given_at ?? item.noted_at ?? item.at ?? item.created_at ?? item.created);
  }

  function gradeColour(g) {
    const c = g && (g.colour ?? (g.grade && g.grade.colour));
    return COLOURS.includes(c) ? c : null;
  }

  function usableReadings() {
    const list = Array.isArray(page.timeline && page.timeline.readings) ? page.timeline.readings : [];
    return list
      .map((r) => ({ r, v: readingValue(r), at: itemTime(r) }))
      .filter((x) => x.v !== null && x.at && !x.r.rejected && x.r.usable !== false)
      .sort((a, b) => a.at - b.at);
  }

  // ---- chart ------------------------------------------------------------------------------
  function drawChart() {
    const box = $("chart");
    const W = 360;
    const H = 220;
    const M = { left: 34, right: 10, top: 14, bottom: 28 };
    const readings = usableReadings();
    const tl = page.timeline || {};
    const doses = (Array.isArray(tl.doses) ? tl.doses : []).map((d) => ({ d, at: itemTime(d) })).filter((x) => x.at);
    const symptoms = (Array.isArray(tl.symptoms) ? tl.symptoms : [])
      .map((s) => ({ s, at: itemTime(s) }))
      .filter((x) => x.at);
    const grades = (Array.isArray(tl.grades) ? tl.grades : [])
      .map((g) => ({ g, at: itemTime(g), colour: gradeColour(g) }))
      .filter((x) => x.at && x.colour)
      .sort((a, b) => a.at - b.at);

    const times = [...readings, ...doses, ...symptoms, ...grades].map((x) => x.at.getTime());
    const title = svg("title", { id: "chart-title" }, t("chart_heading"));
    const desc = svg("desc", { id: "chart-desc" }, chartSummary(readings));
    const root = svg("svg", {
      class: "fever-chart",
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": "chart-title chart-desc",
      "data-points": readings.length,
    });
    root.append(title, desc);
    if (!times.length) {
      root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" }, t("chart_empty")));
      box.replaceChildren(root);
      return;
    }
    let t0 = Math.min(...times);
    let t1 = Math.max(...times);
    if (t1 - t0 < 30 * 60000) {
      const mid = (t0 + t1) / 2;
      t0 = mid - 15 * 60000;
      t1 = mid + 15 * 60000;
    }
    const span = t1 - t0;
    t0 -= span * 0.04;
    t1 += span * 0.04;
    const values = readings.map((x) => x.v);
    const yMin = Math.floor(Math.min(35.5, ...values) - 0.2);
    const yMax = Math.ceil(Math.max(40.5, ...values) + 0.2);
    const x = (ms) => M.left + ((ms - t0) / (t1 - t0)) * (W - M.left - M.right);
    const y = (v) => M.top + ((yMax - v) / (yMax - yMin)) * (H - M.top - M.bottom);
    const plotBottom = H - M.bottom;

    // Colour bands: each grade colours the time from its change until the next one.
    const bands = svg("g", { class: "bands" });
    grades.forEach((g, i) => {
      const start = x(g.at.getTime());
      const end = i + 1 < grades.length ? x(grades[i + 1].at.getTime()) : W - M.right;
      const width = Math.max(1.5, end - start);
      bands.append(
        svg("rect", { class: `band band-${g.colour}`, x: start, y: M.top, width, height: plotBottom - M.top, "data-colour": g.colour }),
        svg("rect", { class: `band-strip band-strip-${g.colour}`, x: start, y: M.top - 6, width, height: 5 }),
        svg("title", null, `${t(`colour_${g.colour}`)} · ${fmtTime(g.at)}`),
      );
    });
    root.append(bands);

    // Grid: one line per degree, the 38 °C line stronger.
    const grid = svg("g", { class: "grid" });
    for (let v = yMin; v <= yMax; v += 1) {
      grid.append(
        svg("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: v === 38 ? "grid-fever" : "grid-line" }),
        svg("text", { x: M.left - 4, y: y(v) + 3.5, "text-anchor": "end", class: "axis-label" }, String(v)),
      );
    }
    grid.append(svg("text", { x: 2, y: M.top - 4, class: "axis-unit" }, "°C"));
    const ticks = 4;
    for (let i = 0; i <= ticks; i += 1) {
      const ms = t0 + ((t1 - t0) * i) / ticks;
      const tx = x(ms);
      grid.append(
        svg("line", { x1: tx, x2: tx, y1: plotBottom, y2: plotBottom + 4, class: "tick" }),
        svg(
          "text",
          { x: tx, y: H - 8, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle", class: "axis-label" },
          fmtTime(new Date(ms), span > 20 * 3600000),
        ),
      );
    }
    grid.append(svg("line", { x1: M.left, x2: W - M.right, y1: plotBottom, y2: plotBottom, class: "axis" }));
    root.append(grid);

    // Doses: a dashed line and a pill marker at the bottom.
    const doseLayer = svg("g", { class: "doses" });
    doses.forEach(({ d, at }) => {
      const dx = x(at.getTime());
      const drug = text(d.drug_name ? local(d.drug_name) : d.drug);
      const amount = d.mg ? `${d.mg} mg` : d.ml ? `${d.ml} ml` : "";
      doseLayer.append(
        svg(
          "g",
          { class: "dose-marker", "data-drug": text(d.drug) },
          svg("line", { x1: dx, x2: dx, y1: M.top, y2: plotBottom, class: "dose-line" }),
          svg("rect", { x: dx - 5, y: plotBottom - 12, width: 10, height: 10, rx: 5, class: "dose-pill" }),
          svg("title", null, `${t("legend_dose")}: ${drug} ${amount} · ${fmtTime(at)}`),
        ),
      );
    });
    root.append(doseLayer);

    // Symptom notes: small diamonds on the top edge.
    const symptomLayer = svg("g", { class: "symptoms" });
    symptoms.forEach(({ s, at }) => {
      const sx = x(at.getTime());
      const sy = M.top + 6;
      symptomLayer.append(
        svg(
          "g",
          { class: "symptom-marker" },
          svg("path", { d: `M${sx} ${sy - 5}L${sx + 5} ${sy}L${sx} ${sy + 5}L${sx - 5} ${sy}Z`, class: "symptom-mark" }),
          svg("title", null, `${fmtTime(at)} ${text(s.text)}`),
        ),
      );
    });
    root.append(symptomLayer);

    // Readings: a line through the points, each point coloured by the value band.
    if (readings.length > 1) {
      root.append(
        svg("polyline", {
          class: "reading-line",
          points: readings.map((p) => `${x(p.at.getTime()).toFixed(1)},${y(p.v).toFixed(1)}`).join(" "),
        }),
      );
    }
    const pointLayer = svg("g", { class: "readings" });
    readings.forEach(({ r, v, at }) => {
      const site = text(r.site);
      pointLayer.append(
        svg(
          "circle",
          {
            class: `reading-point${v >= 38 ? " febrile" : ""}`,
            cx: x(at.getTime()).toFixed(1),
            cy: y(v).toFixed(1),
            r: 4.5,
            "data-value": v,
            "data-source": text(r.source),
          },
          svg("title", null, `${v.toFixed(1)} °C${site ? ` · ${t(`site_${site}`)}` : ""} · ${fmtTime(at)}`),
        ),
      );
    });
    root.append(pointLayer);
    box.replaceChildren(root);
  }

  function chartSummary(readings) {
    if (!readings.length) return t("chart_empty");
    const last = readings[readings.length - 1];
    const peak = Math.max(...readings.map((r) => r.v));
    return tf("chart_desc", { n: readings.length, last: last.v.toFixed(1), time: fmtTime(last.at), peak: peak.toFixed(1) });
  }

  // The diary as a list (also what a screen reader reads instead of the chart).
  function renderDiary() {
    const list = $("diary-list");
    const tl = page.timeline || {};
    const entries = [];
    (Array.isArray(tl.readings) ? tl.readings : []).forEach((r) => {
      const v = readingValue(r);
      const site = text(r.site);
      entries.push({
        at: itemTime(r),
        kind: "reading",
        line: `${v === null ? "?" : `${v.toFixed(1)} °C`}${site ? ` · ${t(`site_${site}`)}` : ""}${r.source === "ble" ? " · BLE" : ""}`,
      });
    });
    (Array.isArray(tl.doses) ? tl.doses : []).forEach((d) => {
      const amount = d.mg ? `${d.mg} mg` : d.ml ? `${d.ml} ml` : "";
      entries.push({ at: itemTime(d), kind: "dose", line: `${t("legend_dose")}: ${text(d.drug_name ? local(d.drug_name) : d.drug)} ${amount}` });
    });
    (Array.isArray(tl.symptoms) ? tl.symptoms : []).forEach((s) => {
      entries.push({ at: itemTime(s), kind: "symptom", line: `${t("legend_symptom")}: ${text(s.text)}` });
    });
    entries.sort((a, b) => (b.at ? b.at.getTime() : 0) - (a.at ? a.at.getTime() : 0));
    list.replaceChildren(
      ...entries.map((e) => el("li", { "data-kind": e.kind }, el("time", null, e.at ? fmtTime(e.at) : ""), ` ${e.line}`)),
    );
    if (!entries.length) list.append(el("li", { class: "muted", i18n: "chart_empty" }));
  }

  // ---- colour banner ----------------------------------------------------------------------
  function fillList(id, items, map) {
    const list = $(id);
    list.replaceChildren(...items.map((item) => el("li", null, map ? map(item) : text(item))));
    return items.length > 0;
  }

  // When the server planned the next re-measure (from the latest reading), if it did.
  function plannedRemeasure() {
    const due = [...page.reminders.values()]
      .filter((r) => r.kind === "remeasure" && r.status === "pending")
      .map((r) => toDate(r.due_at))
      .filter(Boolean)
      .sort((a, b) => a - b);
    return due[0] || null;
  }

  function renderGrade(grade) {
    page.grade = grade || null;
    const banner = $("grade-banner");
    const colour = gradeColour(grade) || "none";
    banner.dataset.colour = colour;
    banner.className = `grade-banner colour-${colour}`;
    const label = $("grade-label");
    if (!grade) {
      label.dataset.i18n = "grade_none";
      label.textContent = t("grade_none");
      for (const id of ["grade-do", "grade-features", "grade-escalation", "grade-warnings", "grade-remeasure", "grade-number", "grade-call"]) {
        $(id).hidden = true;
      }
      $("grade-meaning").textContent = "";
      $("grade-disclaimer").textContent = "";
      return;
    }
    delete label.dataset.i18n;
    label.textContent = text(grade.label) || t(`colour_${colour}_label`);
    $("grade-meaning").textContent = text(grade.meaning);
    $("grade-call").hidden = !(grade.call_120 === true || colour === "red");
    $("grade-call").textContent = grade.call_120 === true ? t("call_120_now") : t("red_call_if_worse");
    $("grade-do").hidden = !fillList("grade-do-list", Array.isArray(grade.do_now) ? grade.do_now : []);
    const features = Array.isArray(grade.features) ? grade.features : [];
    $("grade-features").hidden = !fillList("grade-feature-list", features, (f) => {
      const name = local(f.name);
      return f.evidence ? `${name}（${text(f.evidence)}）` : name;
    });
    $("grade-escalation").hidden = !fillList(
      "grade-escalation-list",
      Array.isArray(grade.escalation_triggers) ? grade.escalation_triggers : [],
    );
    const warnings = (Array.isArray(grade.warnings) ? grade.warnings : []).map((w) => (w && w.message ? w.message : w));
    $("grade-warnings").hidden = !fillList("grade-warning-list", warnings.filter(Boolean));
    const remeasure = $("grade-remeasure");
    const rm = grade.remeasure || null;
    if (rm && (rm.advice || rm.in_hours)) {
      let line = text(rm.advice);
      const planned = plannedRemeasure();
      if (planned || (typeof rm.in_hours === "number" && rm.in_hours > 0)) {
        const due = planned || new Date(Date.now() + rm.in_hours * 3600000);
        line = `${tf("remeasure_at", { time: fmtTime(due) })} ${line}`.trim();
      }
      remeasure.textContent = line;
      remeasure.hidden = false;
    } else remeasure.hidden = true;
    $("grade-number").textContent = text(grade.number_statement);
    $("grade-number").hidden = !grade.number_statement;
    $("grade-disclaimer").textContent = text(grade.disclaimer);
  }

  // ---- alert ------------------------------------------------------------------------------
  function showAlert(msg) {
    const box = $("alert");
    const child = page.children.find((c) => childIdOf(c) === text(msg.child_id));
    const message = pickLang(text(msg.message)) || t("alert_default");
    const name = child ? text(child.name) : "";
    // The server's message usually names the child already.
    $("alert-message").textContent = name && !message.startsWith(name) ? `${name}：${message}` : message;
    const title = $("alert").querySelector(".alert-title");
    title.dataset.i18n = msg.call_120 === true ? "alert_title_120" : "alert_title";
    title.textContent = t(title.dataset.i18n);
    const nearest = msg.nearest_emergency;
    let nearestText = "";
    if (nearest && typeof nearest === "object") {
      nearestText = [local(nearest.name), local(nearest.address), nearest.phone ? `☎ ${text(nearest.phone)}` : "", local(nearest.note || nearest.message)]
        .filter(Boolean)
        .join(" · ");
    } else nearestText = pickLang(local(nearest));
    const label = t("nearest_emergency");
    const labelled = nearestText.toLowerCase().startsWith(label.toLowerCase()) ? nearestText : `${label}：${nearestText}`;
    $("alert-emergency").textContent = nearestText ? labelled : "";
    $("alert-emergency").hidden = !nearestText;
    box.dataset.childId = text(msg.child_id);
    box.hidden = false;
    box.scrollIntoView({ block: "start", behavior: "auto" });
    box.querySelector(".call-120").focus({ preventScroll: true });
  }

  function hideAlert() {
    $("alert").hidden = true;
  }

  // ---- reminders --------------------------------------------------------------------------
  function rememberReminder(r) {
    if (!r || typeof r !== "object") return;
    const child = text(r.child_id);
    if (child && page.childId && child !== page.childId) return;
    const key = text(r.id ?? r.reminder_id) || `${text(r.due_at)}|${text(local(r.message))}`;
    page.reminders.set(key, { ...r, key });
  }

  function renderReminders() {
    const list = $("reminder-list");
    const byDue = (a, b) => (toDate(a.due_at) || 0) - (toDate(b.due_at) || 0);
    const all = [...page.reminders.values()];
    const pending = all.filter((r) => r.status !== "sent" && r.status !== "cancelled").sort(byDue);
    const sent = all.filter((r) => r.status === "sent").sort(byDue).slice(-3);
    const items = [...sent, ...pending];
    list.replaceChildren(
      ...items.map((r) => {
        const due = toDate(r.due_at);
        const overdue = r.status !== "sent" && due && due.getTime() <= Date.now();
        return el(
          "li",
          { class: `reminder${overdue ? " due" : ""}${r.status === "sent" ? " past" : ""}`, "data-status": text(r.status) },
          el("time", { datetime: text(r.due_at) }, due ? fmtTime(due) : ""),
          el("span", null, ` ${local(r.message) || t("reminder_default")}`),
        );
      }),
    );
    $("reminder-empty").hidden = items.length > 0;
  }

  // ---- entries ----------------------------------------------------------------------------
  function requireChild() {
    if (page.childId) return true;
    showNotice(t("pick_child_first"), "error");
    return false;
  }

  function childPath(suffix) {
    return `/children/${encodeURIComponent(page.childId)}${suffix}`;
  }

  async function submitReading(event) {
    event.preventDefault();
    if (!requireChild()) return;
    hideNotice();
    const raw = $("reading-value").value.trim();
    const value = Number(raw);
    if (!raw || !Number.isFinite(value)) {
      showNotice(t("reading_invalid"), "error");
      return;
    }
    const body = { value, unit: $("reading-unit").value || null, site: $("reading-site").value, source: "manual" };
    const time = isoFromInput($("reading-time").value);
    if (time) body.time = time;
    const form = $("reading-form");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const data = await api("POST", childPath("/readings"), body);
      $("reading-value").value = "";
      $("reading-time").value = "";
      if (data && data.grade) renderGrade(data.grade);
      const warnings = data && data.grade && Array.isArray(data.grade.warnings) ? data.grade.warnings : [];
      if (warnings.length) showNotice(warnings.map((w) => text(w.message || w)).join(" "), "info");
      await refreshTimeline();
    } catch (error) {
      showNotice(errorText(error), "error");
    } finally {
      button.disabled = false;
    }
  }

  function doseCheckNode(check, refused) {
    const box = el("div", { class: `dose-check ${refused ? "refused" : "allowed"}`, "data-code": text(check && check.code) });
    if (!check) return box;
    const name = local(check.drug_name);
    box.append(el("p", { class: "dose-reason" }, local(check.reason)));
    if (refused && check.instead) box.append(el("p", { class: "dose-instead" }, `${t("instead")}: ${local(check.instead)}`));
    if (!refused && (check.dose_mg_min || check.dose_ml_min)) {
      const parts = [];
      if (check.dose_mg_min) parts.push(`${check.dose_mg_min}–${check.dose_mg_max} mg`);
      if (check.dose_ml_min) parts.push(`${check.dose_ml_min}–${check.dose_ml_max} ml`);
      box.append(el("p", null, tf("dose_range", { drug: name, range: parts.join(" / ") })));
    }
    if (check.next_allowed_at) box.append(el("p", null, tf("next_dose_at", { time: fmtTime(check.next_allowed_at) })));
    const warnings = Array.isArray(check.warnings) ? check.warnings : [];
    if (warnings.length) {
      box.append(el("ul", { class: "dose-warnings" }, ...warnings.map((w) => el("li", null, local(w.message || w)))));
    }
    if (check.note) box.append(el("p", { class: "disclaimer" }, local(check.note)));
    return box;
  }

  async function submitDose(event) {
    event.preventDefault();
    if (!requireChild()) return;
    hideNotice();
    const body = { drug: $("dose-drug").value.trim() };
    const mg = $("dose-mg").value;
    const ml = $("dose-ml").value;
    const conc = $("dose-conc").value;
    if (mg) body.mg = Number(mg);
    if (ml) body.ml = Number(ml);
    if (conc) body.concentration_mg_per_ml = Number(conc);
    const time = isoFromInput($("dose-time").value);
    if (time) body.time = time;
    const result = $("dose-result");
    const form = $("dose-form");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const data = await api("POST", childPath("/doses"), body);
      result.replaceChildren(el("p", { class: "result-title ok", i18n: "dose_logged" }), doseCheckNode(data && data.check, false));
      result.dataset.state = "logged";
      result.hidden = false;
      form.reset();
      await refreshTimeline();
    } catch (error) {
      const check = error.body && (error.body.check || (error.body.error && error.body.error.check));
      const nodes = [el("p", { class: "result-title refused", i18n: check ? "dose_refused" : "error_generic" })];
      nodes.push(check ? doseCheckNode(check, true) : el("p", { class: "dose-error" }, errorText(error)));
      result.replaceChildren(...nodes);
      result.dataset.state = "refused";
      result.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async function submitSymptom(event) {
    event.preventDefault();
    if (!requireChild()) return;
    hideNotice();
    const value = $("symptom-text").value.trim();
    if (!value) return;
    const form = $("symptom-form");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const data = await api("POST", childPath("/symptoms"), { text: value });
      $("symptom-text").value = "";
      if (data && data.grade) renderGrade(data.grade);
      await refreshTimeline();
    } catch (error) {
      showNotice(errorText(error), "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---- thermometer frames -----------------------------------------------------------------
  // Over the websocket when connected (the server answers with a grade push), else over REST.
  async function sendFrame(hex, childId) {
    // received_at: the device clock has no zone, the server reads it in the phone's zone.
    if (core.send({ type: "ble", child_id: childId, payload_hex: hex, received_at: isoLocal(new Date()) })) return true;
    try {
      const data = await api("POST", `/children/${encodeURIComponent(childId)}/ble`, { payload_hex: hex, received_at: isoLocal(new Date()) });
      if (childId === page.childId && data && data.grade) renderGrade(data.grade);
      return true;
    } catch (error) {
      showNotice(errorText(error), "error");
      return false;
    }
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function runSimulator() {
    if (!requireChild() || page.simRunning) return;
    const values = $("sim-values")
      .value.split(/[\s,，;；]+/)
      .map((v) => Number(v))
      .filter((v) => Number.isFinite(v) && v > 0);
    if (!values.length) {
      showNotice(t("sim_invalid"), "error");
      return;
    }
    page.simRunning = true;
    const button = $("sim-btn");
    button.disabled = true;
    const status = $("ble-status");
    const childId = page.childId;
    const site = $("reading-site").value;
    // The device "measured" every SIM_SPACING_MIN minutes, the last one just now.
    const end = Date.now() - 2000;
    try {
      for (let i = 0; i < values.length; i += 1) {
        const time = new Date(end - (values.length - 1 - i) * SIM_SPACING_MIN * 60000);
        const frame = encodeTemperatureFrame({ value: values[i], unit: "C", time, site });
        status.textContent = tf("sim_sending", { i: i + 1, n: values.length, value: values[i].toFixed(1) });
        await sendFrame(toHex(frame), childId);
        await sleep(SIM_STEP_MS);
      }
      status.textContent = tf("sim_done", { n: values.length });
    } finally {
      page.simRunning = false;
      button.disabled = false;
      scheduleRefresh(300);
    }
  }

  async function connectThermometer() {
    if (!requireChild()) return;
    const status = $("ble-status");
    if (!("bluetooth" in navigator) || !navigator.bluetooth) {
      status.textContent = t(window.isSecureContext ? "ble_unavailable" : "ble_insecure");
      status.dataset.state = "unavailable";
      return;
    }
    try {
      const available = typeof navigator.bluetooth.getAvailability === "function" ? await navigator.bluetooth.getAvailability() : true;
      if (!available) {
        status.textContent = t("ble_adapter_off");
        status.dataset.state = "unavailable";
        return;
      }
      status.textContent = t("ble_choose");
      const device = await navigator.bluetooth.requestDevice({ filters: [{ services: [0x1809] }] });
      page.ble.device = device;
      page.ble.retries = 0;
      device.addEventListener("gattserverdisconnected", onBleDisconnected);
      await startBleNotifications();
    } catch (error) {
      const name = error && error.name;
      status.textContent = name === "NotFoundError" ? t("ble_cancelled") : `${t("ble_failed")} ${text(error && error.message)}`;
      status.dataset.state = "error";
    }
  }

  async function startBleNotifications() {
    const device = page.ble.device;
    const status = $("ble-status");
    status.textContent = tf("ble_connecting", { name: text(device.name) || "BLE" });
    const server = await device.gatt.connect();
    const service = await server.getPrimaryService(0x1809);
    const characteristic = await service.getCharacteristic(0x2a1c);
    if (page.ble.characteristic) page.ble.characteristic.removeEventListener("characteristicvaluechanged", onBleValue);
    page.ble.characteristic = characteristic;
    characteristic.addEventListener("characteristicvaluechanged", onBleValue);
    await characteristic.startNotifications(); // 0x2A1C indicates; this subscribes to both
    status.textContent = tf("ble_connected", { name: text(device.name) || "BLE" });
    status.dataset.state = "connected";
    $("ble-btn").dataset.i18n = "ble_reconnect";
    $("ble-btn").textContent = t("ble_reconnect");
  }

  function onBleValue(event) {
    const value = event.target && event.target.value;
    if (!value || !page.childId) return;
    sendFrame(toHex(value), page.childId); // de-duplicated by the server if resent after reconnect
    scheduleRefresh(600);
  }

  async function onBleDisconnected() {
    const status = $("ble-status");
    status.dataset.state = "disconnected";
    if (page.ble.retries >= 3 || !page.ble.device) {
      status.textContent = t("ble_lost");
      return;
    }
    page.ble.retries += 1;
    status.textContent = t("ble_reconnecting");
    await sleep(1000 * page.ble.retries);
    try {
      await startBleNotifications();
      page.ble.retries = 0;
    } catch {
      status.textContent = t("ble_lost");
    }
  }

  // ---- pre-consultation form --------------------------------------------------------------
  async function buildForm() {
    if (!requireChild()) return;
    hideNotice();
    const button = $("form-build");
    button.disabled = true;
    try {
      const note = $("form-note").value.trim();
      const data = await api("POST", childPath("/form"), note ? { note } : {});
      page.draft = { form_id: text(data.form_id ?? (data.form && data.form.form_id)), form: data.form || {}, status: text(data.status), key: randomKey() };
      core.renderForm($("form-fields"), page.draft.form);
      $("form-review").hidden = false;
      $("form-send").disabled = false;
      $("form-status").textContent = t("form_draft");
      $("form-status").dataset.status = "draft";
      $("form-review").scrollIntoView({ block: "start", behavior: "auto" });
    } catch (error) {
      showNotice(errorText(error), "error");
    } finally {
      button.disabled = false;
    }
  }

  async function sendForm() {
    const draft = page.draft;
    if (!draft || !draft.form_id) return;
    const button = $("form-send");
    button.disabled = true;
    try {
      const data = await api("POST", `/forms/${encodeURIComponent(draft.form_id)}/send`, { idempotency_key: draft.key });
      draft.status = text(data && data.status) || "sent";
      $("form-status").textContent = tf("form_sent", { time: fmtTime(new Date()) });
      $("form-status").dataset.status = draft.status;
    } catch (error) {
      button.disabled = false; // the same idempotency key makes a retry safe
      showNotice(errorText(error), "error");
    }
  }

  // ---- nurse callback ---------------------------------------------------------------------
  async function requestCallback(event) {
    event.preventDefault();
    if (!requireChild()) return;
    hideNotice();
    const body = {};
    const phone = $("callback-phone").value.trim();
    const note = $("callback-note").value.trim();
    if (phone) body.phone = phone;
    if (note) body.note = note;
    const form = $("callback-form");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const data = await api("POST", childPath("/callback"), body);
      const cb = (data && data.callback) || data || {};
      $("callback-status").textContent = tf("callback_requested", { time: fmtTime(itemTime(cb) || new Date()) });
      $("callback-status").dataset.status = text(cb.status) || "requested";
      $("callback-note").value = "";
    } catch (error) {
      showNotice(errorText(error), "error");
    } finally {
      button.disabled = false;
    }
  }

  // ---- websocket messages -----------------------------------------------------------------
  function onMessage(msg) {
    const forChild = text(msg.child_id) === page.childId;
    switch (msg.type) {
      case "grade":
        if (forChild) {
          if (msg.grade && typeof msg.grade === "object") renderGrade(msg.grade);
          scheduleRefresh();
        }
        break;
      case "alert":
        showAlert(msg);
        if (forChild) scheduleRefresh();
        break;
      case "reminder":
        if (forChild || !msg.child_id) {
          const reminder = msg.reminder && typeof msg.reminder === "object" ? { child_id: msg.child_id, ...msg.reminder } : msg;
          rememberReminder({ ...reminder, status: "sent" }); // pushed = delivered now
          renderReminders();
        }
        showNotice(`${t("reminder_heading")}: ${local(msg.message || (msg.reminder && msg.reminder.message)) || t("reminder_default")}`, "info");
        break;
      case "saved":
        if (forChild) {
          if (msg.duplicate === true) $("ble-status").textContent = t("ble_duplicate");
          scheduleRefresh();
        }
        break;
      case "error":
        showNotice(pickLang(text(msg.message)) || t("error_generic"), "error");
        break;
      default:
        break;
    }
  }

  function startParentPage() {
    core.state.titleKey = "fever_page_title";
    core.state.onMessage.push(onMessage);
    core.state.onOpen.push(() => {
      if (page.childId) scheduleRefresh(); // catch up on what happened while offline
    });
    core.state.onLang.push(() => {
      renderChildSelect();
      renderChildSummary();
      if (core.state.token && page.childId) refreshTimeline();
    });
    core.state.onUnauthorized = () => {
      if (!core.state.token) return;
      logout();
      showNotice(t("session_expired"), "error");
    };

    core.bindAuth({
      role: "family",
      onSignedIn,
      signupExtra: () => {
        const clinic = $("signup-clinic").value.trim();
        return clinic ? { clinic_id: clinic } : {};
      },
    });
    $("logout-btn").addEventListener("click", logout);
    document.querySelectorAll(".lang-btn").forEach((btn) => btn.addEventListener("click", () => setLang(btn.dataset.lang)));
    $("child-select").addEventListener("change", (event) => selectChild(event.target.value));
    $("child-form").addEventListener("submit", addChild);
    $("reading-form").addEventListener("submit", submitReading);
    $("dose-form").addEventListener("submit", submitDose);
    $("symptom-form").addEventListener("submit", submitSymptom);
    $("sim-btn").addEventListener("click", runSimulator);
    $("ble-btn").addEventListener("click", connectThermometer);
    $("form-build").addEventListener("click", buildForm);
    $("form-send").addEventListener("click", sendForm);
    $("callback-form").addEventListener("submit", requestCallback);
    $("alert-dismiss").addEventListener("click", hideAlert);
    $("child-birth").max = isoLocal(new Date()).slice(0, 10);
    // Re-render the reminders every minute so due ones are marked.
    setInterval(renderReminders, 60000);

    if (core.restoreSession(KEY_SESSION) && core.state.role === "family") {
      showSignedIn(true);
      core.connect();
      loadChildren();
    } else {
      core.setSession({}, KEY_SESSION);
      showSignedIn(false);
    }
    updateStatus();
  }

  // Exposed for debugging in the browser console and for the end-to-end test.
  window.daozhenFever = { core, page };

  async function start() {
    await loadStrings();
    setLang(initialLang());
    if (document.body.dataset.page === "parent") startParentPage();
    document.dispatchEvent(new CustomEvent("daozhen-fever-core-ready"));
  }

  core.ready = new Promise((resolve) => {
    const run = () => start().then(resolve);
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", run);
    else run();
  });
})();

/*
 * Daozhen handoff page (handoff.html), for clinicians: sign in with the fever clinician account
 * (POST /api/fever/login; the session is shared with clinic.html), the list of clinic flags raised
 * by follow-up answers (GET /api/handoff/flags, acknowledge), and the SBAR summary of any chat
 * session or follow-up conversation (GET /api/handoff/sessions/{id}) with its FHIR export.
 * Self-contained: strings zh/en below, no other script needed. All server text goes in via
 * textContent, never innerHTML.
 */
"use strict";

(() => {
  const KEY_SESSION = "daozhen.clinic.session"; // same as clinic.html: one sign-in for both pages
  const KEY_LANG = "daozhen.lang";

  const STRINGS = {
    zh: {
      html_lang: "zh-CN",
      page_title: "交接摘要与随访提醒",
      skip_to_main: "跳到主要内容",
      lang_group: "界面语言",
      signed_out: "未登录",
      signed_in_as: "已登录：{name}",
      logout: "退出",
      auth_heading: "医护登录",
      auth_hint: "使用医护工作台（发热随访）的医护账号登录。",
      username: "用户名",
      password: "密码",
      login: "登录",
      flags_heading: "随访提醒",
      flags_empty: "没有待处理的随访提醒。",
      refresh: "刷新",
      open_heading: "查看会话交接摘要",
      session_id: "会话编号",
      open: "打开",
      open_sbar: "查看摘要",
      acknowledge: "已处理",
      sbar_heading: "SBAR 交接摘要",
      close: "关闭",
      sources: "依据",
      fhir_download: "下载 FHIR",
      fhir_view: "查看 FHIR",
      call_120: "已建议拨打120",
      escalation: "紧急升级",
      attention: "需关注",
      level: "分诊级别",
      red_flags: "危险信号",
      rule_ids: "规则",
      engine_version: "引擎版本",
      knowledge_version: "知识库版本",
      readings: "读数",
      none: "无",
      wrong_role: "只有医护账号可以使用本页面。",
      session_expired: "登录已失效，请重新登录。",
      error_network: "网络连接失败，请稍后重试。",
      error_generic: "出错了，请重试。",
      answer: "回答",
      question: "问题",
      level_emergency_ambulance: "立即拨打120",
      level_emergency: "立即去急诊",
      level_urgent: "24小时内就医",
      level_routine: "近期门诊就诊",
      level_self_care: "居家护理观察",
    },
    en: {
      html_lang: "en",
      page_title: "Handoff summaries and follow-up flags",
      skip_to_main: "Skip to main content",
      lang_group: "Language",
      signed_out: "Signed out",
      signed_in_as: "Signed in: {name}",
      logout: "Sign out",
      auth_heading: "Clinician sign-in",
      auth_hint: "Sign in with your clinician account of the clinic workbench (fever follow-up).",
      username: "Username",
      password: "Password",
      login: "Sign in",
      flags_heading: "Follow-up flags",
      flags_empty: "No open follow-up flags.",
      refresh: "Refresh",
      open_heading: "Open a conversation's handoff",
      session_id: "Conversation id",
      open: "Open",
      open_sbar: "Open summary",
      acknowledge: "Handled",
      sbar_heading: "SBAR handoff",
      close: "Close",
      sources: "Sources",
      fhir_download: "Download FHIR",
      fhir_view: "View FHIR",
      call_120: "Told to call 120",
      escalation: "Escalation",
      attention: "Attention",
      level: "Triage level",
      red_flags: "Red flags",
      rule_ids: "Rules",
      engine_version: "Engine version",
      knowledge_version: "Knowledge version",
      readings: "Readings",
      none: "none",
      wrong_role: "Only clinician accounts may use this page.",
      session_expired: "Your sign-in has expired; please sign in again.",
      error_network: "Network error; please try again.",
      error_generic: "Something went wrong; please try again.",
      answer: "Answer",
      question: "Question",
      level_emergency_ambulance: "Call 120 now",
      level_emergency: "Go to the emergency department now",
      level_urgent: "See a doctor within 24 hours",
      level_routine: "Book a clinic visit soon",
      level_self_care: "Home care",
    },
  };

  const state = { lang: "zh", token: null, role: null, name: "", flags: [], sbar: null, sessionId: null };

  // ---- small helpers ----------------------------------------------------------------------
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
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch {
      /* private browsing: forget on reload */
    }
  }

  function t(key, params) {
    let s = (STRINGS[state.lang] && STRINGS[state.lang][key]) || STRINGS.zh[key] || key;
    for (const [name, value] of Object.entries(params || {})) s = s.replace(`{${name}}`, String(value));
    return s;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fmtTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    return d.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { dateStyle: "short", timeStyle: "short" });
  }

  function showNotice(message, kind) {
    const box = $("notice");
    box.textContent = message;
    box.dataset.kind = kind || "info";
    box.hidden = false;
  }

  function hideNotice() {
    $("notice").hidden = true;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json", "Accept-Language": state.lang };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "network", t("error_network"));
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = (data && data.error) || {};
      if (response.status === 401 && state.token && path.startsWith("/api/handoff")) expire();
      throw new ApiError(response.status, err.code || `http_${response.status}`, err.message || t("error_generic"));
    }
    return data;
  }

  // ---- language -----------------------------------------------------------------------------
  function applyStrings() {
    document.documentElement.lang = t("html_lang");
    document.title = `${t("page_title")} · Daozhen`;
    document.querySelectorAll("[data-i18n]").forEach((node) => {
      node.textContent = t(node.dataset.i18n);
    });
    document.querySelectorAll("[data-i18n-aria-label]").forEach((node) => {
      node.setAttribute("aria-label", t(node.dataset.i18nAriaLabel));
    });
    document.querySelectorAll(".lang-btn").forEach((btn) => {
      btn.setAttribute("aria-pressed", String(btn.dataset.lang === state.lang));
    });
    updateWho();
  }

  function setLang(lang) {
    if (lang !== "zh" && lang !== "en") return;
    state.lang = lang;
    save(KEY_LANG, lang);
    applyStrings();
    renderFlags();
    if (state.sessionId && state.token) openSbar(state.sessionId); // labels come from the server
  }

  // ---- session ------------------------------------------------------------------------------
  function updateWho() {
    const who = $("who");
    who.textContent = state.token ? t("signed_in_as", { name: state.name || "" }) : t("signed_out");
    who.dataset.state = state.token ? "online" : "offline";
  }

  function setSession(data) {
    state.token = data && data.token ? String(data.token) : null;
    state.role = data && data.role ? String(data.role) : null;
    state.name = data && (data.display_name || data.username) ? String(data.display_name || data.username) : "";
    save(
      KEY_SESSION,
      state.token ? JSON.stringify({ token: state.token, role: state.role, account_id: data.account_id, display_name: state.name }) : null,
    );
  }

  function showSignedIn(signedIn) {
    $("auth-section").hidden = signedIn;
    $("workbench").hidden = !signedIn;
    $("logout-btn").hidden = !signedIn;
    updateWho();
  }

  function expire() {
    setSession(null);
    closeSbar();
    state.flags = [];
    renderFlags();
    showSignedIn(false);
    showNotice(t("session_expired"), "error");
  }

  async function login(event) {
    event.preventDefault();
    hideNotice();
    const button = $("login-form").querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const data = await api("POST", "/api/fever/login", {
        username: $("login-username").value.trim(),
        password: $("login-password").value,
      });
      if (data.role !== "clinician") {
        showNotice(t("wrong_role"), "error");
        return;
      }
      setSession(data);
      $("login-password").value = "";
      showSignedIn(true);
      loadFlags();
      openFromHash();
    } catch (error) {
      showNotice(error.message || t("error_generic"), "error");
    } finally {
      button.disabled = false;
    }
  }

  function logout() {
    if (state.token) api("POST", "/api/fever/logout", {}).catch(() => {});
    setSession(null);
    closeSbar();
    state.flags = [];
    renderFlags();
    showSignedIn(false);
  }

  // ---- flags --------------------------------------------------------------------------------
  // Levels on the existing colour scale of the clinician pages (fever.css).
  const LEVEL_COLOUR = {
    emergency_ambulance: "red",
    emergency: "red",
    urgent: "orange",
    routine: "green",
    self_care: "green",
  };

  function levelChip(level, label) {
    const colour = LEVEL_COLOUR[level] || "none";
    return el("span", {
      class: `colour-chip colour-${colour}`,
      "data-level": level || "none",
      text: label || (level ? t(`level_${level}`) : t("none")),
    });
  }

  function badge120() {
    return el("span", { class: "colour-chip colour-red badge-120", text: t("call_120") });
  }

  function renderFlags() {
    const list = $("flag-list");
    list.replaceChildren(
      ...state.flags.map((flag) => {
        const open = el("button", { type: "button", class: "ghost-btn open-sbar", text: t("open_sbar") });
        open.addEventListener("click", () => openSbar(flag.conversation_id));
        const ack = el("button", { type: "button", class: "ghost-btn acknowledge", text: t("acknowledge") });
        ack.addEventListener("click", () => acknowledge(flag.flag_id, ack));
        const flags = (flag.red_flags || []).map((f) => f.name).filter(Boolean);
        return el(
          "li",
          { class: `queue-item colour-${LEVEL_COLOUR[flag.level] || "none"}`, "data-flag-id": flag.flag_id, "data-level": flag.level },
          el(
            "div",
            { class: "queue-main" },
            el(
              "p",
              { class: "queue-title" },
              levelChip(flag.level),
              " ",
              el("strong", { text: t(flag.kind === "escalation" ? "escalation" : "attention") }),
              flag.call_120 ? " " : null,
              flag.call_120 ? badge120() : null,
            ),
            el("p", { class: "queue-summary", text: `${t("answer")}: ${flag.answer_text}` }),
            flags.length ? el("p", { class: "queue-note", text: `${t("red_flags")}: ${flags.join(state.lang === "zh" ? "、" : ", ")}` }) : null,
            el("p", { class: "muted", text: `${flag.plan_id} · ${flag.question_id} · ${fmtTime(flag.created_at)}` }),
          ),
          el("div", { class: "row" }, open, ack),
        );
      }),
    );
    $("flags-empty").hidden = state.flags.length > 0;
    $("flags-count").textContent = state.flags.length ? String(state.flags.length) : "";
  }

  async function loadFlags() {
    try {
      const data = await api("GET", "/api/handoff/flags");
      state.flags = Array.isArray(data && data.flags) ? data.flags : [];
      renderFlags();
    } catch (error) {
      if (error.status !== 401) showNotice(error.message, "error");
    }
  }

  async function acknowledge(flagId, button) {
    button.disabled = true;
    try {
      await api("POST", `/api/handoff/flags/${encodeURIComponent(flagId)}/acknowledge`, {});
      state.flags = state.flags.filter((f) => f.flag_id !== flagId);
      renderFlags();
    } catch (error) {
      button.disabled = false;
      showNotice(error.message, "error");
    }
  }

  // ---- SBAR ---------------------------------------------------------------------------------
  function renderSbar(sbar) {
    const a = sbar.assessment;
    const chip = $("sbar-level");
    chip.replaceChildren(levelChip(a.level, a.level_label));
    chip.dataset.level = a.level || "none";
    if (sbar.recommendation && sbar.recommendation.call_120) chip.append(" ", badge120());
    $("sbar-sections").replaceChildren(
      ...sbar.sections.map((section) =>
        el(
          "section",
          { class: "sbar-section", "data-sbar": section.code },
          el("h3", { text: section.title }),
          el("p", { class: "sbar-text", text: section.text }),
        ),
      ),
    );
    const none = t("none");
    const rows = [
      ["level", `${a.level_label}${a.level ? ` (${a.level})` : ""}`],
      ["red_flags", (a.red_flags || []).map((f) => `${f.name} [${f.rule_id}]`).join("; ") || none],
      ["rule_ids", (a.rule_ids || []).join(", ") || none],
      ["engine_version", a.engine_version || none],
      ["knowledge_version", a.knowledge_version || none],
    ];
    const readings = (sbar.background.readings || []).map((r) =>
      r.kind === "bp" ? `${r.systolic}/${r.diastolic} mmHg` : `${Number(r.mmol_l).toFixed(1)} mmol/L`,
    );
    if (readings.length) rows.push(["readings", readings.join("; ")]);
    $("sbar-audit").replaceChildren(
      ...rows.flatMap(([key, value]) => [el("dt", { text: t(key) }), el("dd", { "data-field": key, text: value })]),
    );
    $("sbar-sources").replaceChildren(...(sbar.sources || []).map((c) => el("li", { text: `${c.doc_id}#${c.section}` })));
    $("sbar-disclaimer").textContent = sbar.disclaimer || "";
  }

  async function openSbar(sessionId) {
    hideNotice();
    try {
      const data = await api("GET", `/api/handoff/sessions/${encodeURIComponent(sessionId)}?lang=${state.lang}`);
      state.sbar = data.sbar;
      state.sessionId = sessionId;
      $("session-id").value = sessionId;
      renderSbar(data.sbar);
      const link = $("fhir-link");
      link.href = fhirUrl(sessionId);
      link.dataset.sessionId = sessionId;
      if ($("fhir-json").dataset.sessionId !== sessionId) $("fhir-json").hidden = true;
      $("sbar").hidden = false;
      $("sbar").scrollIntoView({ block: "start", behavior: "auto" });
    } catch (error) {
      showNotice(error.message, "error");
    }
  }

  function closeSbar() {
    state.sbar = null;
    state.sessionId = null;
    $("sbar").hidden = true;
    $("fhir-json").hidden = true;
  }

  function fhirUrl(id) {
    return `/api/handoff/sessions/${encodeURIComponent(id)}/fhir?lang=${state.lang}`;
  }

  // The export needs the bearer token: fetched, then handed over as a file.
  async function fetchFhir(id) {
    const response = await fetch(fhirUrl(id), {
      headers: { Accept: "application/fhir+json, application/json", Authorization: `Bearer ${state.token}` },
    });
    if (!response.ok) throw new ApiError(response.status, `http_${response.status}`, t("error_generic"));
    return response.text();
  }

  async function downloadFhir(event) {
    event.preventDefault();
    const id = state.sessionId;
    if (!id) return;
    try {
      const body = await fetchFhir(id);
      const url = URL.createObjectURL(new Blob([body], { type: "application/fhir+json" }));
      const a = el("a", { href: url, download: `handoff-${id}.fhir.json`, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      showNotice(error.message, "error");
    }
  }

  async function viewFhir() {
    const id = state.sessionId;
    const pre = $("fhir-json");
    if (!id) return;
    if (!pre.hidden && pre.dataset.sessionId === id) {
      pre.hidden = true;
      return;
    }
    try {
      const body = await fetchFhir(id);
      pre.textContent = JSON.stringify(JSON.parse(body), null, 2);
      pre.dataset.sessionId = id;
      pre.hidden = false;
    } catch (error) {
      showNotice(error.message, "error");
    }
  }

  function openFromHash() {
    const match = /(?:^#|&)session=([^&]+)/.exec(window.location.hash);
    if (match && state.token) openSbar(decodeURIComponent(match[1]));
  }

  // ---- start --------------------------------------------------------------------------------
  function start() {
    const stored = load(KEY_LANG);
    state.lang = stored === "en" || stored === "zh" ? stored : (navigator.language || "").toLowerCase().startsWith("en") ? "en" : "zh";
    document.querySelectorAll(".lang-btn").forEach((btn) => btn.addEventListener("click", () => setLang(btn.dataset.lang)));
    $("login-form").addEventListener("submit", login);
    $("logout-btn").addEventListener("click", logout);
    $("flags-refresh").addEventListener("click", loadFlags);
    $("open-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = $("session-id").value.trim();
      if (id) openSbar(id);
    });
    $("sbar-close").addEventListener("click", closeSbar);
    $("fhir-link").addEventListener("click", downloadFhir);
    $("fhir-view").addEventListener("click", viewFhir);
    window.addEventListener("hashchange", openFromHash);
    applyStrings();
    let restored = null;
    try {
      restored = JSON.parse(load(KEY_SESSION) || "null");
    } catch {
      restored = null;
    }
    if (restored && typeof restored.token === "string" && restored.role === "clinician") {
      setSession(restored);
      showSignedIn(true);
      loadFlags();
      openFromHash();
    } else {
      showSignedIn(false);
    }
    renderFlags();
  }

  window.daozhenHandoff = { state };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

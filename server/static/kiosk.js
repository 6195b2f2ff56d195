/*
 * Daozhen lobby kiosk (kiosk.html): plain browser JavaScript, no build step, no external resources.
 *
 * One visitor at a time walks four screens: 1 symptoms (typed, spoken to the server's speech model,
 * or the browser's own recognition) -> POST /api/triage; 2 booking (an anonymous patient pass kept
 * in memory only, free slots as big buttons, POST with an Idempotency-Key); 3 the route from the
 * main entrance to the room with the floor plan; 4 the visit's next steps with a QR code and print.
 * An emergency level stops the flow at a big 120 message and the way to the emergency room.
 *
 * Nothing is stored in the browser. After the idle timeout (GET /api/kiosk/config, or ?idle=
 * seconds for tests) a warning shows, then everything the visitor entered is cleared. Every
 * request carries the "generation" it was made in: answers that arrive after a reset are dropped,
 * so a kiosk left mid-flow cannot show the previous visitor's data to the next one.
 * Server strings are inserted as text, never as HTML.
 */
"use strict";

(() => {
  const STRINGS = {
    zh: {
      html_lang: "zh-CN",
      page_title: "自助导诊 · Daozhen",
      title: "自助导诊",
      restart: "重新开始",
      banner_title: "这是就医指引，不是诊断。",
      banner_body: "胸痛、呼吸困难、意识不清、大出血：请立即拨打 120。",
      step_symptoms: "说症状",
      step_booking: "挂号",
      step_route: "路线",
      step_next: "下一步",
      ok: "知道了",
      working: "请稍候…",
      symptoms_heading: "哪里不舒服？",
      symptoms_hint: "请打字，或点“说话”按钮说出来。",
      symptoms_placeholder: "例如：手臂起红疹，很痒，两天了",
      talk: "说话",
      talk_stop: "说完了",
      browser_talk: "浏览器语音识别",
      triage: "开始分诊",
      listening: "正在听，请说话…（说完点“说完了”）",
      transcribing: "正在识别…",
      heard: "听到：{text}",
      voice_unavailable: "语音输入暂不可用，请直接打字。",
      voice_lang_unavailable: "本机的语音识别不支持中文，请直接打字。",
      mic_denied: "无法使用麦克风，请直接打字。",
      emergency_big: "请立即拨打 120",
      call_120: "拨打 120",
      emergency_staff: "请马上告诉身边的工作人员或保安。",
      emergency_route: "去急诊室的路线",
      red_flags: "危险信号",
      departments: "建议科室：{names}",
      read_aloud: "朗读",
      to_booking: "挂号：{dept}",
      booking_heading: "挂号",
      booking_hint: "请选一个时间（点一下即可预约）。",
      no_slots: "这几天没有空号了，请到人工窗口咨询。",
      booked: "已预约",
      list_sep: "，",
      name_sep: "、",
      sentence_end: "。",
      arrive_early: "请提前 15 分钟到达。",
      number: "第 {n} 号",
      to_route: "看路线",
      back: "返回",
      route_heading: "怎么走到",
      route_summary: "从正门出发，约 {metres} 米，步行约 {minutes} 分钟。",
      map_alt: "楼层平面图",
      map_missing: "平面图暂不可用，请按上面的文字走。",
      to_steps: "下一步做什么",
      steps_heading: "接下来要做的事",
      plan_fallback: "（本次就诊的详细安排暂时取不到，下面是通用步骤。）",
      plan_fallback_reason: "（本次就诊的详细安排暂时取不到：{reason} 下面是通用步骤。）",
      qr_alt: "就诊计划二维码",
      qr_caption: "用手机拍下二维码，带走就诊计划。",
      plan_disclaimer: "这是就医指引，不是诊断。情况变重请立即告诉工作人员或拨打 120。",
      print: "打印",
      finish: "完成（清除我的信息）",
      idle_title: "还在吗？",
      idle_text: "为保护隐私，{n} 秒后将清除您输入的所有信息。",
      idle_stay: "我还在用",
      dept_general_practice: "全科",
      fallback_check_in: "到挂号/分诊台或自助机报到，出示预约信息。",
      fallback_wait: "到诊室门口候诊，留意叫号屏。",
      fallback_consult: "看医生，说清楚症状和开始的时间。",
      fallback_pay: "按医生的安排缴费、检查或取药。",
      fallback_return: "如有不适加重，立即告诉工作人员或拨打 120。",
      err_empty: "请先写下或说出哪里不舒服。",
      err_network: "连不上服务器，请稍后再试，或到人工窗口咨询。",
      err_http: "出了点问题（{status}），请再试一次或到人工窗口咨询。",
      err_no_tts: "本机暂时不能朗读。",
      err_browser_stt: "浏览器语音识别不可用（可能没有联网），请用“说话”按钮或直接打字。",
    },
    en: {
      html_lang: "en",
      page_title: "Self-service triage · Daozhen",
      title: "Self-service triage",
      restart: "Start over",
      banner_title: "This is guidance, not a diagnosis.",
      banner_body: "Chest pain, trouble breathing, confusion, heavy bleeding: call 120 now.",
      step_symptoms: "Symptoms",
      step_booking: "Book",
      step_route: "Route",
      step_next: "Next steps",
      ok: "OK",
      working: "Please wait…",
      symptoms_heading: "What is wrong?",
      symptoms_hint: "Type, or press “Speak” and say it.",
      symptoms_placeholder: "e.g. itchy red rash on my arm for two days",
      talk: "Speak",
      talk_stop: "Done",
      browser_talk: "Browser speech recognition",
      triage: "Check",
      listening: "Listening… (press “Done” when finished)",
      transcribing: "Recognising…",
      heard: "Heard: {text}",
      voice_unavailable: "Voice input is not available; please type.",
      voice_lang_unavailable: "Voice input is not available in this language; please type.",
      mic_denied: "The microphone cannot be used; please type.",
      emergency_big: "Call 120 now",
      call_120: "Call 120",
      emergency_staff: "Tell the staff or the guard next to you right now.",
      emergency_route: "Way to the emergency room",
      red_flags: "Danger signs",
      departments: "Suggested department: {names}",
      read_aloud: "Read aloud",
      to_booking: "Book: {dept}",
      booking_heading: "Book",
      booking_hint: "Choose a time (one tap books it).",
      no_slots: "No free times in the coming days; please ask at the service desk.",
      booked: "Booked",
      list_sep: ", ",
      name_sep: ", ",
      sentence_end: ".",
      arrive_early: "Please arrive 15 minutes early.",
      number: "no. {n}",
      to_route: "Show the way",
      back: "Back",
      route_heading: "The way to",
      route_summary: "From the main entrance: about {metres} m, about {minutes} min on foot.",
      map_alt: "Floor plan",
      map_missing: "The floor plan is not available; please follow the steps above.",
      to_steps: "What next",
      steps_heading: "Your next steps",
      plan_fallback: "(The details of this visit are not available right now; these are the usual steps.)",
      plan_fallback_reason: "(The details of this visit are not available right now: {reason} These are the usual steps.)",
      qr_alt: "QR code of the visit plan",
      qr_caption: "Take a photo of the QR code to keep your visit plan.",
      plan_disclaimer: "This is guidance, not a diagnosis. If you feel worse, tell the staff at once or call 120.",
      print: "Print",
      finish: "Finish (clear my details)",
      idle_title: "Are you still there?",
      idle_text: "To protect your privacy, everything you entered will be cleared in {n} s.",
      idle_stay: "I'm still here",
      dept_general_practice: "General practice",
      fallback_check_in: "Check in at the registration desk or a self-service machine with your booking.",
      fallback_wait: "Wait outside the consulting room and watch the call screen.",
      fallback_consult: "See the doctor; say what you feel and when it started.",
      fallback_pay: "Pay, have tests or collect medicine as the doctor arranges.",
      fallback_return: "If you feel worse, tell the staff at once or call 120.",
      err_empty: "Please type or say what is wrong first.",
      err_network: "Cannot reach the server; please try again or ask at the service desk.",
      err_http: "Something went wrong ({status}); please try again or ask at the service desk.",
      err_no_tts: "This kiosk cannot read aloud right now.",
      err_browser_stt: "Browser speech recognition is not available (perhaps offline); use “Speak” or type.",
    },
  };

  const EMERGENCY_LEVELS = new Set(["emergency_ambulance", "emergency"]);
  const SCREENS = ["symptoms", "booking", "route", "steps"];
  const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,79}$/;
  const MAX_SLOTS_SHOWN = 8;
  const MAX_RECORD_MS = 30000;
  const HOLD_MS = 700; // held this long, the talk button works as push-to-talk; shorter taps toggle
  const FALLBACK_STEPS = ["check_in", "wait", "consult", "pay", "return"];

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(window.location.search);

  const DEFAULT_CONFIG = {
    idle_s: 90,
    warn_s: 20,
    default_lang: "zh",
    timezone: "Asia/Shanghai",
    clinic: { id: "demo-general-hospital", name: null, map_id: "demo-general-hospital" },
    entrance: "entrance_main",
    emergency_room: "emergency_room",
    stt: { available: false, languages: [] },
    tts: { available: false, languages: [] },
  };

  let config = DEFAULT_CONFIG;
  const timers = { warn: null, clear: null, tick: null, record: null };
  const urls = new Set(); // blob: URLs to revoke on reset

  function freshVisit() {
    return {
      generation: 0,
      screen: "symptoms",
      triageText: "",
      triage: null,
      emergencyRoute: null,
      department: null, // {id, name}
      token: null, // the patient pass: memory only, never storage
      patientId: null,
      slots: [],
      slotsLoaded: false,
      pendingSlot: null,
      bookingKey: null,
      appointment: null,
      route: null,
      visitId: null,
      plan: null, // [{id, text}]
      planFallbackReason: null,
    };
  }

  const state = { lang: "zh", ...freshVisit(), recorder: null, stream: null, recognition: null, audio: null };

  // ============================================================================ strings

  function t(key, vars) {
    const table = STRINGS[state.lang] || STRINGS.zh;
    let s = table[key] ?? STRINGS.zh[key] ?? key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
    return s;
  }

  function text(value) {
    return typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
  }

  // A server string that may come as {zh, en} or as text_zh / text_en fields.
  function local(value) {
    if (value && typeof value === "object") {
      if ("zh" in value || "en" in value) return text(value[state.lang] || value.zh || value.en);
      const zh = value.text_zh ?? value.name_zh ?? value.title_zh;
      const en = value.text_en ?? value.name_en ?? value.title_en;
      if (zh !== undefined || en !== undefined) return text(state.lang === "en" ? en || zh : zh || en);
      return local(value.text ?? value.title ?? value.name ?? value.label ?? "");
    }
    return text(value);
  }

  function paren(main, aside) {
    return state.lang === "en" ? `${main} (${aside})` : `${main}（${aside}）`;
  }

  function applyStrings() {
    document.documentElement.lang = t("html_lang");
    document.title = t("page_title");
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
      node.setAttribute("placeholder", t(node.dataset.i18nPlaceholder));
    }
    for (const node of document.querySelectorAll("[data-i18n-alt]")) node.setAttribute("alt", t(node.dataset.i18nAlt));
    for (const button of document.querySelectorAll(".k-lang-btn")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === state.lang));
    }
    const clinic = config.clinic || {};
    $("k-clinic").textContent = clinic.name ? local(clinic.name) : "";
  }

  // ============================================================================ requests

  class KioskError extends Error {
    constructor(message, code, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  class Stale extends Error {}

  function withLang(path) {
    return path + (path.includes("?") ? "&" : "?") + "lang=" + state.lang;
  }

  // fetch in the current generation: answers that arrive after a reset throw Stale (ignored).
  async function api(method, path, options = {}) {
    const generation = state.generation;
    const headers = { "Accept-Language": state.lang, ...(options.headers || {}) };
    if (options.auth && state.token) headers.Authorization = `Bearer ${state.token}`;
    let body = options.raw;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    let response;
    try {
      response = await fetch(withLang(path), { method, headers, body, cache: "no-store" });
    } catch {
      if (generation !== state.generation) throw new Stale();
      throw new KioskError(t("err_network"), "network", 0);
    }
    if (generation !== state.generation) throw new Stale();
    if (!response.ok) {
      let message = t("err_http", { status: response.status });
      let code = `http_${response.status}`;
      try {
        const data = await response.json();
        if (data && data.error && data.error.message) {
          message = text(data.error.message);
          code = text(data.error.code) || code;
        }
      } catch {
        /* not JSON: keep the generic message */
      }
      if (generation !== state.generation) throw new Stale();
      throw new KioskError(message, code, response.status);
    }
    const result = options.blob ? await response.blob() : await response.json();
    if (generation !== state.generation) throw new Stale();
    return result;
  }

  function showError(error) {
    if (error instanceof Stale) return;
    const message = error instanceof KioskError ? error.message : t("err_http", { status: "JS" });
    if (!(error instanceof KioskError)) console.error(error); // eslint-disable-line no-console
    $("k-error-text").textContent = message;
    $("k-error").hidden = false;
  }

  function clearError() {
    $("k-error").hidden = true;
    $("k-error-text").textContent = "";
  }

  async function busy(work) {
    clearError();
    $("k-busy").hidden = false;
    document.body.setAttribute("aria-busy", "true");
    try {
      return await work();
    } catch (error) {
      showError(error);
      return undefined;
    } finally {
      $("k-busy").hidden = true;
      document.body.removeAttribute("aria-busy");
    }
  }

  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return `k-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  }

  // ============================================================================ screens

  function setScreen(name) {
    state.screen = name;
    document.body.dataset.screen = name;
    for (const section of document.querySelectorAll(".k-screen")) section.hidden = section.dataset.screen !== name;
    const index = SCREENS.indexOf(name);
    for (const item of document.querySelectorAll("#progress li")) {
      const i = SCREENS.indexOf(item.dataset.step);
      item.classList.toggle("done", i < index);
      if (i === index) item.setAttribute("aria-current", "step");
      else item.removeAttribute("aria-current");
    }
    window.scrollTo(0, 0);
  }

  function item(tag, className, content) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function fillSteps(list, steps) {
    list.replaceChildren(...steps.map((step) => item("li", null, step)));
  }

  // ============================================================================ 1: symptoms -> triage

  async function runTriage() {
    const typed = $("symptom-text").value.trim();
    if (!typed) {
      showError(new KioskError(t("err_empty"), "empty_text", 0));
      return;
    }
    await busy(async () => {
      const result = await api("POST", "/api/triage", { json: { text: typed, lang: state.lang } });
      state.triageText = typed;
      state.triage = result;
      const department = chooseDepartment(result);
      if (!state.department || state.department.id !== department.id) {
        // another department: the booking part starts over (a made booking stays on the server)
        Object.assign(state, { appointment: null, slots: [], slotsLoaded: false, route: null, visitId: null });
        Object.assign(state, { plan: null, planFallbackReason: null, pendingSlot: null });
      }
      state.department = department;
      renderTriage();
      if (EMERGENCY_LEVELS.has(result.level)) await loadEmergencyRoute();
    });
  }

  function chooseDepartment(result) {
    const choice = (result.departments || []).find((d) => d && d.id && d.id !== "emergency");
    if (choice) return { id: choice.id, name: text(choice.name) || choice.id };
    return { id: "general_practice", name: null };
  }

  function departmentName() {
    const dept = state.department;
    if (!dept) return "";
    if (dept.id === "general_practice" && !dept.name) return t("dept_general_practice");
    return dept.name || dept.id;
  }

  function isEmergency() {
    return Boolean(state.triage && EMERGENCY_LEVELS.has(state.triage.level));
  }

  function renderTriage() {
    const result = state.triage;
    const card = $("triage-card");
    if (!result) {
      card.hidden = true;
      $("emergency-box").hidden = true;
      document.body.removeAttribute("data-level");
      return;
    }
    document.body.dataset.level = text(result.level);
    $("triage-level").textContent = text(result.level_label);
    const names = (result.departments || []).map((d) => text(d.name)).filter(Boolean);
    $("triage-departments").textContent = names.length ? t("departments", { names: names.join(t("name_sep")) }) : "";
    const flags = result.red_flags || [];
    $("triage-flags").hidden = flags.length === 0;
    $("triage-flag-list").replaceChildren(
      ...flags.map((f) => item("li", null, f.evidence ? paren(text(f.name), text(f.evidence)) : text(f.name))),
    );
    const emergency = isEmergency();
    $("triage-advice").textContent = emergency ? "" : text(result.advice); // in the red box instead
    $("emergency-box").hidden = !emergency;
    $("emergency-text").textContent = emergency ? text(result.advice) : "";
    $("triage-disclaimer").textContent = text(result.disclaimer);
    $("to-booking").hidden = emergency;
    $("to-booking").textContent = t("to_booking", { dept: departmentName() });
    card.hidden = false;
    renderEmergencyRoute();
  }

  async function loadEmergencyRoute() {
    try {
      state.emergencyRoute = await fetchRoute(config.emergency_room);
    } catch (error) {
      state.emergencyRoute = null;
      showError(error);
    }
    renderEmergencyRoute();
  }

  function renderEmergencyRoute() {
    const route = isEmergency() ? state.emergencyRoute : null;
    $("emergency-route").hidden = !route;
    fillSteps($("emergency-steps"), route ? routeStepTexts(route) : []);
  }

  // ---- voice input: the server's speech model (MediaRecorder) or the browser's recognition

  function serverVoiceUsable() {
    const stt = config.stt || {};
    const languages = stt.languages || [];
    return Boolean(
      stt.available &&
        (languages.length === 0 || languages.includes(state.lang)) &&
        navigator.mediaDevices &&
        navigator.mediaDevices.getUserMedia &&
        window.MediaRecorder,
    );
  }

  function browserRecognition() {
    return window.SpeechRecognition || window.webkitSpeechRecognition || null;
  }

  function updateVoiceControls() {
    const talk = $("talk-btn");
    const usable = serverVoiceUsable();
    talk.disabled = !usable && !state.recorder;
    $("browser-talk-btn").hidden = !(browserRecognition() && navigator.onLine);
    if (state.recorder) return;
    talk.textContent = t("talk");
    talk.setAttribute("aria-pressed", "false");
    const stt = config.stt || {};
    if (usable) $("voice-status").textContent = "";
    else if (stt.available && (stt.languages || []).length && !(stt.languages || []).includes(state.lang)) {
      $("voice-status").textContent = t("voice_lang_unavailable");
    } else $("voice-status").textContent = t("voice_unavailable");
  }

  function pickMimeType() {
    for (const type of ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"]) {
      if (window.MediaRecorder && MediaRecorder.isTypeSupported && MediaRecorder.isTypeSupported(type)) return type;
    }
    return "";
  }

  async function startRecording() {
    if (state.recorder || !serverVoiceUsable()) return;
    clearError();
    const generation = state.generation;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      $("voice-status").textContent = t("mic_denied");
      return;
    }
    if (generation !== state.generation) {
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    const mimeType = pickMimeType();
    const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
    const chunks = [];
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) chunks.push(event.data);
    });
    recorder.addEventListener("stop", () => {
      stream.getTracks().forEach((track) => track.stop());
      if (generation !== state.generation) return; // reset while recording: drop the audio
      const blob = new Blob(chunks, { type: recorder.mimeType || mimeType || "audio/webm" });
      transcribe(blob);
    });
    state.recorder = recorder;
    state.stream = stream;
    recorder.start();
    $("talk-btn").textContent = t("talk_stop");
    $("talk-btn").setAttribute("aria-pressed", "true");
    $("voice-status").textContent = t("listening");
    timers.record = window.setTimeout(stopRecording, MAX_RECORD_MS);
  }

  function stopRecording() {
    window.clearTimeout(timers.record);
    const recorder = state.recorder;
    state.recorder = null;
    state.stream = null;
    if (recorder && recorder.state !== "inactive") recorder.stop();
    updateVoiceControls();
  }

  async function transcribe(blob) {
    $("voice-status").textContent = t("transcribing");
    try {
      const result = await api("POST", "/api/kiosk/stt", {
        raw: blob,
        headers: { "Content-Type": blob.type || "application/octet-stream" },
      });
      addSpokenText(text(result.text));
    } catch (error) {
      if (error instanceof Stale) return;
      $("voice-status").textContent = "";
      showError(error);
    }
  }

  function addSpokenText(spoken) {
    if (!spoken) return;
    const box = $("symptom-text");
    box.value = box.value.trim() ? `${box.value.trim()} ${spoken}` : spoken;
    $("voice-status").textContent = t("heard", { text: spoken });
  }

  function startBrowserRecognition() {
    const Recognition = browserRecognition();
    if (!Recognition) return;
    clearError();
    const generation = state.generation;
    const recognition = new Recognition();
    recognition.lang = state.lang === "en" ? "en-US" : "zh-CN";
    recognition.interimResults = false;
    recognition.maxAlternatives = 1;
    recognition.addEventListener("result", (event) => {
      if (generation !== state.generation) return;
      const best = event.results && event.results[0] && event.results[0][0];
      if (best) addSpokenText(text(best.transcript).trim());
    });
    recognition.addEventListener("error", () => {
      if (generation !== state.generation) return;
      $("voice-status").textContent = "";
      showError(new KioskError(t("err_browser_stt"), "browser_stt", 0));
    });
    recognition.addEventListener("end", () => {
      if (state.recognition === recognition) state.recognition = null;
    });
    state.recognition = recognition;
    $("voice-status").textContent = t("listening");
    try {
      recognition.start();
    } catch {
      showError(new KioskError(t("err_browser_stt"), "browser_stt", 0));
    }
  }

  // ---- voice output: espeak-ng on the server, else the browser's speech synthesis

  function stopSpeaking() {
    if (state.audio) {
      state.audio.pause();
      state.audio = null;
    }
    if (window.speechSynthesis) window.speechSynthesis.cancel();
  }

  function keepUrl(blob) {
    const url = URL.createObjectURL(blob);
    urls.add(url);
    return url;
  }

  function dropUrl(url) {
    if (url && urls.has(url)) {
      URL.revokeObjectURL(url);
      urls.delete(url);
    }
  }

  async function speak(words) {
    const spoken = words.replace(/\s+/g, " ").trim().slice(0, 590);
    if (!spoken) return;
    stopSpeaking();
    const tts = config.tts || {};
    if (tts.available && (tts.languages || []).includes(state.lang)) {
      try {
        const wav = await api("POST", "/api/kiosk/tts", { json: { text: spoken, lang: state.lang }, blob: true });
        const url = keepUrl(wav);
        const audio = new Audio(url);
        audio.addEventListener("ended", () => dropUrl(url));
        state.audio = audio;
        await audio.play().catch(() => undefined);
        return;
      } catch (error) {
        if (error instanceof Stale) return;
        if (!window.speechSynthesis) {
          showError(error);
          return;
        }
      }
    }
    if (window.speechSynthesis && window.SpeechSynthesisUtterance) {
      const utterance = new SpeechSynthesisUtterance(spoken);
      utterance.lang = state.lang === "en" ? "en-US" : "zh-CN";
      window.speechSynthesis.speak(utterance);
      return;
    }
    showError(new KioskError(t("err_no_tts"), "tts_unavailable", 0));
  }

  function triageWords() {
    const r = state.triage;
    if (!r) return "";
    return [r.level_label, r.advice, $("triage-departments").textContent].map(text).join("。 ");
  }

  // ============================================================================ 2: booking

  async function startBooking() {
    if (!state.triage || isEmergency()) return;
    if (state.appointment) {
      renderBooking(); // already booked in this visit: show it, never book twice
      setScreen("booking");
      return;
    }
    state.slots = [];
    state.slotsLoaded = false;
    renderBooking();
    setScreen("booking");
    await busy(async () => {
      await ensurePatient();
      await loadSlots();
    });
  }

  async function ensurePatient() {
    if (state.token) return;
    const pass = await api("POST", "/api/patients", { json: { lang: state.lang } });
    state.token = text(pass.token);
    state.patientId = text(pass.patient_id);
  }

  function slotList(data) {
    if (Array.isArray(data)) return data;
    if (data && typeof data === "object") {
      for (const key of ["slots", "items", "results", "free"]) if (Array.isArray(data[key])) return data[key];
    }
    return [];
  }

  async function loadSlots() {
    const clinic = config.clinic || {};
    const query = new URLSearchParams({
      clinic_id: clinic.id || "",
      department_id: state.department.id,
      limit: "200", // enough numbers to find several sessions (one button each)
    });
    const data = await api("GET", `/api/booking/slots?${query}`, { auth: true });
    const seen = new Set();
    // One button per doctor and half-day (its next free number): choices, not eight numbers in a row.
    state.slots = slotList(data)
      .filter((slot) => slot && (slot.slot_id || slot.id) && !slot.referral_only)
      .filter((slot) => {
        const session = `${slot.date || text(slot.start).slice(0, 10)}|${slot.half_day || ""}|${slot.doctor_id || ""}`;
        if (seen.has(session)) return false;
        seen.add(session);
        return true;
      })
      .slice(0, MAX_SLOTS_SHOWN);
    state.slotsLoaded = true;
    renderBooking();
  }

  function formatTime(value) {
    const date = new Date(value);
    if (!value || Number.isNaN(date.getTime())) return text(value);
    const locale = state.lang === "en" ? "en-GB" : "zh-CN";
    const options = { month: "short", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit" };
    try {
      return new Intl.DateTimeFormat(locale, { ...options, timeZone: config.timezone }).format(date);
    } catch {
      return new Intl.DateTimeFormat(locale, options).format(date);
    }
  }

  function doctorName(slot) {
    const doctor = slot.doctor_name ?? (slot.doctor && (slot.doctor.name ?? slot.doctor)) ?? "";
    return local(doctor);
  }

  function slotLabel(slot) {
    const parts = [formatTime(slot.start)];
    const doctor = doctorName(slot);
    if (doctor) parts.push(doctor);
    if (slot.number) parts.push(t("number", { n: slot.number }));
    return parts.join(" · ");
  }

  function renderBooking() {
    $("booking-dept").textContent = departmentName();
    const booked = state.appointment;
    const list = $("slot-list");
    list.hidden = Boolean(booked);
    list.replaceChildren(
      ...state.slots.map((slot) => {
        const button = item("button", "k-btn k-slot", slotLabel(slot));
        button.type = "button";
        button.setAttribute("role", "listitem");
        button.dataset.slotId = text(slot.slot_id || slot.id);
        button.addEventListener("click", () => book(slot));
        return button;
      }),
    );
    $("slot-empty").hidden = Boolean(booked) || !state.slotsLoaded || state.slots.length > 0;
    $("booked-card").hidden = !booked;
    if (booked) {
      const parts = [
        departmentName(),
        formatTime(booked.start),
        booked.doctor,
        booked.number ? t("number", { n: booked.number }) : "",
      ].filter(Boolean);
      $("booked-text").textContent = `${parts.join(t("list_sep"))}${t("sentence_end")} ${t("arrive_early")}`;
    }
  }

  function normalizeAppointment(data, slot) {
    const a = (data && (data.appointment || data)) || {};
    return {
      id: text(a.appointment_id || a.id),
      slot_id: text(a.slot_id || slot.slot_id || slot.id),
      start: a.start || slot.start,
      number: a.number || slot.number || null,
      doctor: local(a.doctor_name ?? (a.doctor && (a.doctor.name ?? a.doctor))) || doctorName(slot),
      room_id: text(a.room_id || (a.room && a.room.id) || slot.room_id) || `clinic_${state.department.id}`,
      room_name: local(a.room_name ?? (a.room && a.room.name) ?? ""),
      department_id: text(a.department_id || state.department.id),
    };
  }

  async function book(slot) {
    const slotId = text(slot.slot_id || slot.id);
    // The same slot retried (a double tap, a lost answer) reuses its key: one booking, not two.
    if (state.pendingSlot !== slotId) {
      state.pendingSlot = slotId;
      state.bookingKey = newKey();
    }
    await busy(async () => {
      try {
        const data = await api("POST", "/api/booking/appointments", {
          json: { slot_id: slotId },
          headers: { "Idempotency-Key": state.bookingKey },
          auth: true,
        });
        state.appointment = normalizeAppointment(data, slot);
        renderBooking();
      } catch (error) {
        if (error instanceof KioskError && error.status === 409) {
          state.pendingSlot = null;
          await loadSlots().catch(() => undefined); // taken meanwhile: show what is left
        }
        throw error;
      }
    });
  }

  // ============================================================================ 3: route

  async function fetchRoute(to) {
    const clinic = config.clinic || {};
    const query = new URLSearchParams({ map_id: clinic.map_id || clinic.id || "", from: config.entrance, to });
    return api("GET", `/api/navigation/route?${query}`);
  }

  function routeStepTexts(route) {
    const steps = (route && (route.steps || (route.route && route.route.steps))) || [];
    return steps.map((step) => local(step)).filter(Boolean);
  }

  async function showRoute() {
    if (!state.appointment) return;
    setScreen("route");
    renderRoute();
    await busy(loadRoute);
  }

  function renderRoute() {
    const route = state.route;
    const appointment = state.appointment;
    const place = route && route.to && typeof route.to === "object" ? local(route.to.name ?? route.to) : "";
    $("route-dest").textContent = appointment ? place || appointment.room_name || departmentName() : "";
    fillSteps($("route-steps"), route ? routeStepTexts(route) : []);
    const metres = route && Number(route.metres ?? route.distance_m);
    const seconds = route && Number(route.seconds ?? route.duration_s);
    $("route-summary").textContent =
      route && Number.isFinite(metres) && Number.isFinite(seconds)
        ? t("route_summary", { metres: Math.round(metres), minutes: Math.max(1, Math.round(seconds / 60)) })
        : "";
    const img = $("route-map");
    if (!route || !appointment) {
      img.hidden = true;
      img.removeAttribute("src");
      $("route-map-missing").hidden = true;
      $("route-map-extra").replaceChildren();
      return;
    }
    // One floor plan per floor the route crosses, the room's floor last (and largest). The route
    // names them (floors[].svg_url); else they are derived from the steps' building and floor.
    const planUrl = (key) => {
      if (key.startsWith("/")) {
        const url = new URL(key, window.location.origin);
        url.searchParams.set("lang", state.lang);
        return url.origin === window.location.origin ? url.pathname + url.search : "";
      }
      const clinic = config.clinic || {};
      const query = new URLSearchParams({
        map_id: clinic.map_id || clinic.id || "",
        from: config.entrance,
        to: appointment.room_id,
        lang: state.lang,
      });
      const [building, floor] = key.split("|");
      if (building) query.set("building", building);
      if (floor) query.set("floor", floor);
      return `/api/navigation/floorplan.svg?${query}`;
    };
    const floors = [];
    if (Array.isArray(route.floors) && route.floors.some((f) => f && f.svg_url)) {
      for (const floor of route.floors) if (floor && floor.svg_url) floors.push(text(floor.svg_url));
    } else {
      for (const step of route.steps || []) {
        const key = `${text(step.building)}|${text(step.floor)}`;
        if ((step.building || step.floor !== undefined) && !floors.includes(key)) floors.push(key);
      }
    }
    if (!floors.length) floors.push("|");
    const extra = floors.slice(0, -1).slice(-2);
    $("route-map-extra").replaceChildren(
      ...extra.map((key) => {
        const image = item("img", "k-map-img");
        image.alt = t("map_alt");
        image.addEventListener("error", () => image.remove());
        image.src = planUrl(key);
        return image;
      }),
    );
    const src = planUrl(floors[floors.length - 1]);
    if (img.getAttribute("src") !== src) {
      img.hidden = false;
      $("route-map-missing").hidden = true;
      img.src = src;
    }
  }

  function routeWords() {
    return [$("route-dest").textContent, $("route-summary").textContent, ...routeStepTexts(state.route)].join("。 ");
  }

  // ============================================================================ 4: next steps, QR, print

  function planSteps(data) {
    const list = Array.isArray(data)
      ? data
      : (data && (data.steps || data.items || (data.plan && data.plan.steps))) || [];
    return list
      .map((step, i) => {
        if (typeof step === "string") return { id: `step${i + 1}`, text: step };
        const words = local(step.title ?? step.text ?? step.name ?? step.label ?? step) || text(step.id);
        const where = local((step.where && step.where.name) ?? step.place ?? step.room_name ?? "");
        const extra = [where && !words.includes(where) ? where : "", text(step.how_long_text)].filter(Boolean);
        return {
          id: text(step.id || step.step || step.step_id || step.kind || `step${i + 1}`),
          text: extra.length ? paren(words, extra.join(t("list_sep"))) : words,
        };
      })
      .filter((step) => step.text);
  }

  async function showSteps() {
    if (!state.appointment) return;
    setScreen("steps");
    renderSteps();
    await busy(loadPlan);
  }

  async function loadPlan() {
    try {
      if (!state.visitId) {
        const visit = await api("POST", "/api/visits", {
          json: {
            appointment_id: state.appointment.id,
            clinic_id: (config.clinic || {}).id,
            department_id: state.department.id,
            lang: state.lang,
          },
          auth: true,
        });
        state.visitId = text((visit && (visit.visit_id || visit.id || (visit.visit && visit.visit.visit_id))) || "");
      }
      const plan = await api("GET", `/api/visits/${encodeURIComponent(state.visitId)}/plan`, { auth: true });
      state.plan = planSteps(plan);
      state.planFallbackReason = null;
    } catch (error) {
      if (error instanceof Stale) throw error;
      // The visit service failed: the visitor still leaves with the usual steps and the reason.
      state.plan = null;
      state.planFallbackReason = error instanceof KioskError ? error.message : "";
    }
    renderSteps();
    await loadQr();
  }

  async function loadRoute() {
    state.route = await fetchRoute(state.appointment.room_id);
    renderRoute();
  }

  function currentPlan() {
    if (state.plan && state.plan.length) return state.plan;
    return FALLBACK_STEPS.map((id) => ({ id, text: t(`fallback_${id}`) }));
  }

  function renderSteps() {
    const appointment = state.appointment;
    const clinic = config.clinic || {};
    const summary = appointment
      ? [clinic.name ? local(clinic.name) : "", departmentName(), formatTime(appointment.start), appointment.room_name]
          .filter(Boolean)
          .join(" · ")
      : "";
    $("plan-summary").textContent = summary;
    const known = Boolean(appointment && (state.plan || state.planFallbackReason !== null));
    fillSteps($("plan-steps"), known ? currentPlan().map((step) => step.text) : []);
    const note = $("plan-fallback");
    note.hidden = !(known && !(state.plan && state.plan.length));
    note.textContent = state.planFallbackReason
      ? t("plan_fallback_reason", { reason: state.planFallbackReason })
      : t("plan_fallback");
  }

  async function loadQr() {
    const appointment = state.appointment;
    if (!appointment) return;
    const ids = (value) => (value && SAFE_ID.test(value) ? value : undefined);
    const plan = {
      clinic_id: (config.clinic || {}).id,
      department_id: ids(state.department.id),
      slot_start: appointment.start || undefined,
      room_id: ids(appointment.room_id),
      appointment_id: ids(appointment.id),
      visit_id: ids(state.visitId),
      steps: currentPlan()
        .map((s) => s.id)
        .filter((id) => SAFE_ID.test(id))
        .slice(0, 20),
    };
    const svg = await api("POST", "/api/kiosk/qr", { json: { plan }, blob: true });
    const img = $("plan-qr");
    dropUrl(img.dataset.url);
    const url = keepUrl(svg);
    img.dataset.url = url;
    img.src = url;
    img.hidden = false;
  }

  function stepsWords() {
    return [$("plan-summary").textContent, ...currentPlan().map((s) => s.text)].join("。 ");
  }

  // ============================================================================ idle timeout and reset

  function idleSeconds() {
    const forced = Number(params.get("idle"));
    if (Number.isFinite(forced) && forced >= 2 && forced <= 3600) return forced;
    return Number(config.idle_s) > 0 ? Number(config.idle_s) : DEFAULT_CONFIG.idle_s;
  }

  function warnSeconds(idle) {
    const forced = Number(params.get("warn"));
    const wanted = Number.isFinite(forced) && forced > 0 ? forced : Number(config.warn_s) || 10;
    return Math.max(1, Math.min(wanted, Math.floor(idle / 2)));
  }

  // Anything worth clearing: typed or spoken text, a result, a pass, another screen or language.
  function dirty() {
    return Boolean(
      $("symptom-text").value.trim() ||
        state.triage ||
        state.token ||
        state.screen !== "symptoms" ||
        state.lang !== (config.default_lang || "zh") ||
        !$("k-error").hidden,
    );
  }

  function clearTimers() {
    window.clearTimeout(timers.warn);
    window.clearTimeout(timers.clear);
    window.clearInterval(timers.tick);
  }

  function armIdle() {
    clearTimers();
    $("idle-warning").hidden = true;
    const idle = idleSeconds();
    const warn = warnSeconds(idle);
    timers.warn = window.setTimeout(() => {
      if (!dirty()) {
        armIdle(); // nothing to protect: no nagging on an empty kiosk
        return;
      }
      showIdleWarning(warn);
      timers.clear = window.setTimeout(() => resetAll("idle"), warn * 1000);
    }, (idle - warn) * 1000);
  }

  function showIdleWarning(seconds) {
    let left = seconds;
    const update = () => {
      $("idle-text").textContent = t("idle_text", { n: Math.max(0, left) });
    };
    update();
    $("idle-warning").hidden = false;
    timers.tick = window.setInterval(() => {
      left -= 1;
      update();
    }, 1000);
  }

  function resetAll(reason) {
    state.generation += 1; // every answer still on its way is now stale
    stopRecording();
    if (state.recognition) {
      try {
        state.recognition.abort();
      } catch {
        /* already ended */
      }
      state.recognition = null;
    }
    stopSpeaking();
    for (const url of [...urls]) dropUrl(url);
    const generation = state.generation;
    Object.assign(state, freshVisit(), { generation, lang: config.default_lang || "zh" });
    for (const field of document.querySelectorAll("textarea, input")) field.value = "";
    const lists = ["triage-flag-list", "emergency-steps", "slot-list", "route-steps", "plan-steps", "route-map-extra"];
    for (const list of lists) {
      $(list).replaceChildren();
    }
    const texts = ["booked-text", "route-summary", "plan-summary", "voice-status", "route-dest", "booking-dept"];
    texts.push("triage-level", "triage-departments", "triage-advice", "triage-disclaimer", "emergency-text");
    for (const id of texts) $(id).textContent = "";
    for (const id of ["route-map", "plan-qr"]) {
      const img = $(id);
      img.removeAttribute("src");
      delete img.dataset.url;
      img.hidden = true;
    }
    document.body.removeAttribute("data-level");
    $("k-busy").hidden = true;
    clearError();
    applyStrings();
    renderTriage();
    renderBooking();
    setScreen("symptoms");
    updateVoiceControls();
    document.body.dataset.lastReset = reason;
    if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
    armIdle();
  }

  function setLang(lang) {
    if (lang !== "zh" && lang !== "en") return;
    state.lang = lang;
    applyStrings();
    updateVoiceControls();
    renderBooking();
    renderRoute();
    renderSteps();
    // Server texts come in one language: ask again in the new one.
    if (state.screen === "route" && state.appointment) busy(loadRoute);
    else if (state.screen === "steps" && state.appointment) busy(loadPlan);
    if (state.triage && state.triageText && state.screen === "symptoms") {
      $("symptom-text").value = state.triageText;
      runTriage();
    } else if (state.triage) {
      renderTriage();
    }
  }

  // ============================================================================ wiring

  function wire() {
    for (const button of document.querySelectorAll(".k-lang-btn")) {
      button.addEventListener("click", () => setLang(button.dataset.lang));
    }
    $("restart-btn").addEventListener("click", () => resetAll("restart"));
    $("finish-btn").addEventListener("click", () => resetAll("finish"));
    $("k-error-close").addEventListener("click", clearError);
    $("triage-btn").addEventListener("click", runTriage);
    $("symptom-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        runTriage();
      }
    });
    $("to-booking").addEventListener("click", startBooking);
    $("booking-back").addEventListener("click", () => setScreen("symptoms"));
    $("to-route").addEventListener("click", showRoute);
    $("to-steps").addEventListener("click", showSteps);
    $("print-btn").addEventListener("click", () => window.print());
    $("triage-read").addEventListener("click", () => speak(triageWords()));
    $("booked-read").addEventListener("click", () => speak($("booked-text").textContent));
    $("route-read").addEventListener("click", () => speak(routeWords()));
    $("steps-read").addEventListener("click", () => speak(stepsWords()));
    $("browser-talk-btn").addEventListener("click", startBrowserRecognition);
    $("route-map").addEventListener("error", () => {
      $("route-map").hidden = true;
      $("route-map-missing").hidden = false;
    });
    $("idle-stay").addEventListener("click", armIdle);

    // Talk: a tap starts and a second tap stops; held down, it works as push-to-talk.
    const talk = $("talk-btn");
    let pressedAt = 0;
    talk.addEventListener("pointerdown", () => {
      pressedAt = Date.now();
      if (!state.recorder) startRecording();
      else pressedAt = -1; // this press ends the recording
    });
    talk.addEventListener("pointerup", () => {
      if (pressedAt === -1 || (pressedAt > 0 && Date.now() - pressedAt >= HOLD_MS)) stopRecording();
      pressedAt = 0;
    });
    talk.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      event.preventDefault();
      if (state.recorder) stopRecording();
      else startRecording();
    });

    for (const kind of ["pointerdown", "keydown", "input", "touchstart", "wheel"]) {
      document.addEventListener(kind, armIdle, { passive: true, capture: true });
    }
    window.addEventListener("online", updateVoiceControls);
    window.addEventListener("offline", updateVoiceControls);
  }

  async function start() {
    wire();
    state.lang = params.get("lang") === "en" ? "en" : "zh";
    applyStrings();
    updateVoiceControls();
    setScreen("symptoms");
    armIdle();
    try {
      const response = await fetch("/api/kiosk/config", { cache: "no-store" });
      if (response.ok) config = { ...DEFAULT_CONFIG, ...(await response.json()) };
    } catch {
      /* the page works without it: typing, triage and defaults */
    }
    if (!params.get("lang") && !dirty()) state.lang = config.default_lang === "en" ? "en" : "zh";
    applyStrings();
    updateVoiceControls();
    armIdle();
    document.body.dataset.ready = "true";
  }

  // A small handle for the browser tests and a staff console; it exposes no visitor data.
  window.daozhenKiosk = {
    reset: () => resetAll("api"),
    transcribe: (blob) => transcribe(blob),
    snapshot: () => ({
      screen: state.screen,
      lang: state.lang,
      hasPass: Boolean(state.token),
      hasTriage: Boolean(state.triage),
      hasAppointment: Boolean(state.appointment),
      generation: state.generation,
    }),
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

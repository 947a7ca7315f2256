// The borgerdialog web chat: a WebSocket per tab; every text it shows comes from the server's
// catalogs (da, en), handed over in the page.
(function () {
  "use strict";
  var texts = JSON.parse(document.body.getAttribute("data-texts"));
  var language = document.documentElement.lang;
  var log = document.getElementById("log");
  var input = document.getElementById("input");
  var form = document.getElementById("composer");
  var status = document.getElementById("status");
  var note = document.getElementById("composer-note");
  var heading = document.getElementById("chat-title");
  var headings = JSON.parse(heading.getAttribute("data-headings"));
  var maxText = Number(document.body.getAttribute("data-max-text"));
  // Typed answers in flight, by client id: the question they answer, the text, and the bot's
  // replies so far. When the server has handled one and the question is still open, answered
  // only by a plain message (too long, out of range), the text goes back into the field.
  var drafts = {};
  var params = new URLSearchParams(location.search);
  // Inside another site's page, a browser that blocks third-party storage throws on any use of
  // sessionStorage; the chat then keeps its queue in memory (only a reload loses it).
  var memoryOnly = false;
  var store = (function () {
    try {
      window.sessionStorage.setItem("borgerdialog-probe", "1");
      window.sessionStorage.removeItem("borgerdialog-probe");
      return window.sessionStorage;
    } catch (e) {
      memoryOnly = true;
      var memory = {};
      return {
        getItem: function (key) { return memory.hasOwnProperty(key) ? memory[key] : null; },
        setItem: function (key, value) { memory[key] = String(value); },
        removeItem: function (key) { delete memory[key]; },
        keys: function () { return Object.keys(memory); }
      };
    }
  })();
  var pendingKey = "borgerdialog-pending";
  // Set once a tab has opened a consultation (or said /start), so a reload resumes.
  var startedPrefix = "borgerdialog-started-";
  // The server refuses bigger frames (and closes the socket on much bigger ones), so such a
  // message is never queued: it would be resent on every reconnect.
  var maxFrameBytes = 16 * 1024;
  var pending = readPending();
  var socket = null;
  var retries = 0;
  var steady = null;
  var historyLoaded = false;
  var lastPressed = null;

  function t(key) { return (texts[language] || texts.da)[key] || key; }

  function applyTexts() {
    document.documentElement.lang = language;
    document.title = t("web.title");
    heading.textContent = headings[language] || headings.da;
    document.querySelectorAll("[data-text]").forEach(function (el) {
      el.textContent = t(el.getAttribute("data-text"));
    });
    document.querySelectorAll("[data-label]").forEach(function (el) {
      el.setAttribute("aria-label", t(el.getAttribute("data-label")));
    });
    if (menu) { markMore(); }  // other labels, other widths
  }

  function newId() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function frameBytes(message) { return new TextEncoder().encode(JSON.stringify(message)).length; }

  // What an earlier page left unsent; anything that could not be sent as it is, is dropped.
  function readPending() {
    var stored;
    try { stored = JSON.parse(store.getItem(pendingKey) || "[]"); } catch (e) { stored = []; }
    if (!Array.isArray(stored)) { return []; }
    return stored.filter(function (m) {
      return m && typeof m === "object" && typeof m.id === "string" && frameBytes(m) <= maxFrameBytes;
    });
  }

  function savePending() {
    try { store.setItem(pendingKey, JSON.stringify(pending)); } catch (e) { /* full: memory only */ }
  }

  function send(message) {
    message.id = newId();
    if (frameBytes(message) > maxFrameBytes) { showRefused(message, t("web.too_long")); return; }
    pending.push(message);
    savePending();
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(message)); }
    else { status.textContent = t("web.sending"); }
  }

  function enableButtons(element) {
    element.querySelectorAll(".buttons button").forEach(function (b) { b.disabled = false; });
  }

  // A reason next to the message it is about (a refused press), announced at once; it goes
  // when the message is replaced.
  function noteOn(element, text) {
    var note = element.querySelector(".notice");
    if (!note) {
      note = document.createElement("p");
      note.className = "notice";
      note.setAttribute("role", "alert");
      element.appendChild(note);
    }
    note.textContent = text;
    note.scrollIntoView({ block: "nearest" });
  }

  function render(message) {
    var element = document.getElementById("m-" + message.id);
    // A replaced message keeps keyboard focus on the same button (a ticked option).
    var active = document.activeElement;
    var focusedPayload = null;
    if (element && active && element.contains(active)) {
      focusedPayload = active.getAttribute("data-payload");
    } else if (element && (!active || active === document.body) && element.querySelector(".buttons button:disabled")) {
      // Disabling the pressed button took focus away from it.
      focusedPayload = lastPressed;
    }
    if (!element) {
      element = document.createElement("article");
      element.id = "m-" + message.id;
      log.appendChild(element);
    }
    element.className = "message " + (message.author === "bot" ? "bot" : "citizen");
    element.setAttribute("data-expects-text", message.expects_text ? "true" : "false");
    element.textContent = "";
    var sender = document.createElement("span");
    sender.className = "sender";
    sender.textContent = (message.author === "bot" ? t("web.bot") : t("web.you")) + ": ";
    element.appendChild(sender);
    element.appendChild(document.createTextNode(message.text));
    if (message.attachment) {
      var link = document.createElement("a");
      link.href = "data:application/json;base64," + message.attachment.content;
      link.download = message.attachment.filename;
      link.textContent = t("web.download") + " " + message.attachment.filename;
      element.appendChild(document.createElement("br"));
      element.appendChild(link);
    }
    (message.buttons || []).forEach(function (row) {
      var group = document.createElement("div");
      group.className = "buttons";
      group.setAttribute("role", "group");
      row.forEach(function (button) {
        var control;
        if (button.url) {
          control = document.createElement("a");
          control.href = button.url;
          control.rel = "noopener";
          control.target = "_blank";
        } else {
          control = document.createElement("button");
          control.type = "button";
          control.setAttribute("data-payload", button.payload);
          control.addEventListener("click", function () {
            // Against a double press until the server has dealt with this one ("handled").
            element.querySelectorAll(".buttons button").forEach(function (b) { b.disabled = true; });
            lastPressed = button.payload;
            send({ type: "button", payload: button.payload, message: String(message.id) });
          });
        }
        if (button.secondary) { control.className = "secondary"; }
        if (typeof button.pressed === "boolean") {
          control.setAttribute("aria-pressed", button.pressed ? "true" : "false");
        }
        control.textContent = button.label;
        group.appendChild(control);
      });
      element.appendChild(group);
    });
    if (focusedPayload) { refocus(element, focusedPayload); }
    return element;
  }

  function refocus(element, payload) {
    var same = Array.prototype.filter.call(element.querySelectorAll(".buttons button"), function (b) {
      return b.getAttribute("data-payload") === payload && !b.disabled;
    })[0];
    if (same) { same.focus(); return true; }
    return false;
  }

  // Why what is in the field was not taken, right below it.
  function fieldNote(text) {
    note.textContent = text;
    if (text) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
  }

  function putBack(text, reason) {
    if (!input.value) { input.value = text; }
    fieldNote(reason);
    input.focus();
  }

  // A refused message is shown with the reason next to it; a typed one goes back into the
  // field (when it is empty), so nothing the citizen wrote is lost.
  function showRefused(message, reason) {
    var note = document.createElement("p");
    note.className = "refused";
    if (message.type === "button") {
      var carrier = document.getElementById("m-" + message.message);
      if (carrier) {
        carrier.querySelectorAll(".buttons button").forEach(function (b) { b.disabled = false; });
      }
      note.textContent = t("web.not_sent") + ": " + reason;
      (carrier || log).appendChild(note);
    } else {
      note.textContent = t("web.not_sent") + ": »" + message.text + "« – " + reason;
      log.appendChild(note);
      putBack(message.text, reason);
    }
    status.textContent = reason;
    note.scrollIntoView({ block: "nearest" });
  }

  // After each bot message, focus goes where the citizen acts next: its first button, or the
  // text field.
  function focusNext(element) {
    var typed = element && element.getAttribute("data-expects-text") === "true";
    var first = !typed && element && element.querySelector(".buttons button:not(:disabled)");
    (first || input).focus();
    element && element.scrollIntoView({ block: "nearest" });
  }

  function handle(event) {
    if (event.type === "history") {
      log.textContent = "";
      event.messages.forEach(render);
      if (event.language && event.language !== language) { language = event.language; applyTexts(); }
      historyLoaded = true;
      var bots = log.querySelectorAll(".message.bot");
      focusNext(bots.length ? bots[bots.length - 1] : null);
      startIfAsked(event.messages.length === 0);
    } else if (event.type === "message") {
      var replacing = !!document.getElementById("m-" + event.message.id);
      var element = render(event.message);
      if (event.language && event.language !== language) { language = event.language; applyTexts(); }
      var kept = replacing && element.contains(document.activeElement);
      if (event.message.author === "bot" && !replacing) {
        var plain = !(event.message.buttons || []).length && !event.message.expects_text;
        Object.keys(drafts).forEach(function (id) {
          drafts[id].replies.push({ plain: plain, text: event.message.text });
        });
      }
      if (event.message.author === "bot" && !kept) { focusNext(element); }
    } else if (event.type === "received" || event.type === "error") {
      // A refusal is as final as a receipt: the message leaves the queue and is not resent.
      var refused = pending.filter(function (m) { return m.id === event.id; })[0];
      pending = pending.filter(function (m) { return m.id !== event.id; });
      savePending();
      if (event.type === "error" && refused) { showRefused(refused, event.text); }
      else { status.textContent = event.type === "error" ? event.text : ""; }
    } else if (event.type === "notice") {
      var about = event.message && document.getElementById("m-" + event.message);
      if (about) { enableButtons(about); noteOn(about, event.text); }
      else { status.textContent = event.text; }
    } else if (event.type === "cleared") {
      // The transcript was erased (/forget): only the message that says so stays on screen.
      Array.prototype.slice.call(log.children).forEach(function (element) {
        if (element.id !== "m-" + event.keep) { log.removeChild(element); }
      });
      drafts = {};
      // Nothing is under way any more: the next load of a consultation's link opens it anew
      // (the flags said it was started, and a reload showed an empty chat).
      storedKeys().forEach(function (key) {
        if (key.indexOf(startedPrefix) === 0) { store.removeItem(key); }
      });
    } else if (event.type === "handled") {
      // The press was dealt with; a refused one replaced nothing, so its buttons work again
      // and keyboard focus goes back to the button pressed.
      var pressed = event.message && document.getElementById("m-" + event.message);
      if (pressed) {
        enableButtons(pressed);
        var lost = !document.activeElement || document.activeElement === document.body;
        if (lost && lastPressed) { refocus(pressed, lastPressed); }
      }
      var draft = drafts[event.id];
      delete drafts[event.id];
      var asked = draft && document.getElementById(draft.question);
      var refusal = draft && draft.replies.length && draft.replies.every(function (r) { return r.plain; });
      if (refusal && asked && asked.getAttribute("data-expects-text") === "true") {
        putBack(draft.text, draft.replies[draft.replies.length - 1].text);
      }
    }
  }

  function storedKeys() {
    if (store.keys) { return store.keys(); }
    var keys = [];
    for (var index = 0; index < store.length; index += 1) { keys.push(store.key(index)); }
    return keys;
  }

  function startIfAsked(empty) {
    var slug = params.get("c");
    var flag = startedPrefix + (slug || "");
    // Without storage a reload forgets the flag; a conversation already under way says enough.
    if (store.getItem(flag) || (memoryOnly && !empty)) { return; }
    if (slug || empty) {
      store.setItem(flag, "1");
      // The server resumes a consultation already under way rather than starting it over.
      send(slug ? { type: "open", slug: slug } : { type: "text", text: "/start" });
    }
  }

  function connect() {
    status.textContent = t("web.connecting");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    // The browser's preferred language travels in the address: some browsers send no
    // Accept-Language (or their own interface language) with the WebSocket handshake.
    var preferred = encodeURIComponent(navigator.language || "");
    socket = new WebSocket(scheme + location.host + "/chat/ws?lang=" + preferred);
    socket.onopen = function () {
      status.textContent = "";
      // The back-off resets only once a connection has lasted: one that the server keeps
      // closing must not be retried at full speed.
      steady = setTimeout(function () { retries = 0; }, 5000);
      pending.forEach(function (m) { socket.send(JSON.stringify(m)); });
    };
    socket.onmessage = function (frame) { handle(JSON.parse(frame.data)); };
    socket.onclose = function () {
      clearTimeout(steady);
      status.textContent = t("web.offline");
      setTimeout(connect, Math.min(10000, 500 * Math.pow(2, retries++)));
    };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    // Checked here, not with maxlength, which cuts a pasted text short without a word.
    if (Array.from(text).length > maxText) { fieldNote(t("web.too_long")); return; }
    fieldNote("");
    input.value = "";
    var message = { type: "text", text: text };
    send(message);
    var open = log.querySelectorAll('.message.bot[data-expects-text="true"]');
    if (open.length && text.charAt(0) !== "/" && message.id) {
      drafts[message.id] = { text: text, question: open[open.length - 1].id, replies: [] };
    }
  });
  input.addEventListener("input", function () { if (note.textContent) { fieldNote(""); } });
  document.querySelectorAll("[data-command]").forEach(function (button) {
    button.addEventListener("click", function () {
      // The command in the chat's language, as the citizen's bubble shows it (/minedata).
      var command = button.getAttribute("data-command-" + language) || button.getAttribute("data-command");
      send({ type: "text", text: command });
    });
  });
  // Whether shortcuts are hidden to the right of the row (a narrow phone): the row says so.
  var menu = document.querySelector(".menu");
  function markMore() {
    menu.classList.toggle("more", menu.scrollLeft + menu.clientWidth < menu.scrollWidth - 1);
  }
  menu.addEventListener("scroll", markMore);
  window.addEventListener("resize", markMore);
  applyTexts();
  connect();
})();

// maskworld play page: frames down (binary: u32 header length | JSON header | RGBA or PNG), actions up (JSON).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const fmt = params.get("fmt") || "rgba";
  const withToken = (path) => token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
  const canvas = $("screen"), ctx = canvas.getContext("2d");
  const decoder = new TextDecoder();
  const mw = window.mw = { frames: 0, fps: 0, header: null, info: null, errors: [], mode: "realtime", driver: "you", connected: false };
  let ws, bindings = [], held = new Set(), times = [], statusTimer = null;

  function status(text, isError) {
    const el = $("status");
    el.textContent = text;
    el.className = isError ? "error" : "";
    clearTimeout(statusTimer);
    if (text) statusTimer = setTimeout(() => { el.textContent = ""; }, isError ? 6000 : 3000);
  }
  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }
  mw.send = send;

  function connect() {
    const qs = new URLSearchParams({ fmt });
    if (token) qs.set("token", token);
    for (const k of ["seed", "mode"]) if (params.get(k)) qs.set(k, params.get(k));
    ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws?${qs}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { mw.connected = true; $("conn").textContent = "connected"; $("conn").className = "pill ok"; };
    ws.onclose = (e) => {
      mw.connected = false;
      $("conn").textContent = e.code === 1008 ? "refused (token?)" : "disconnected — reload";
      $("conn").className = "pill bad";
    };
    ws.onmessage = (e) => typeof e.data === "string" ? onJson(JSON.parse(e.data)) : onFrame(e.data);
  }

  // shared worlds: a checksum of the frame of each tick (the last 64), so two tabs can be compared tick by tick
  mw.sums = {};
  function recordSum(step, px) {
    let x = 2166136261;
    for (let i = 0; i < px.length; i++) { x ^= px[i]; x = Math.imul(x, 16777619) >>> 0; }
    mw.sums[step] = x;
    delete mw.sums[step - 64];
  }

  function onFrame(buf) {
    const n = new DataView(buf).getUint32(0, true);
    const h = JSON.parse(decoder.decode(new Uint8Array(buf, 4, n)));
    if (canvas.width !== h.w || canvas.height !== h.h) { canvas.width = h.w; canvas.height = h.h; }
    if (h.fmt === "rgba") {
      const px = new Uint8ClampedArray(buf, 4 + n, h.w * h.h * 4);
      ctx.putImageData(new ImageData(px, h.w, h.h), 0, 0);
      if (mw.info && mw.info.shared) recordSum(h.step, px);
    } else {
      createImageBitmap(new Blob([new Uint8Array(buf, 4 + n)], { type: "image/png" })).then((b) => ctx.drawImage(b, 0, 0));
    }
    mw.frames += 1; mw.header = h;
    if (h.model_ms != null) times.push(performance.now());
    $("step").textContent = h.step;
    $("reward").textContent = Number(h.total_reward).toFixed(h.total_reward % 1 ? 2 : 0);
    $("done").textContent = h.done ? "yes" : "no";
    $("memory").textContent = h.memory == null ? "off" : h.memory;
    $("closures").textContent = h.closures == null ? "-" :
      h.closures + (h.last_closure == null ? "" : " (last at frame " + h.last_closure + ")");
    if (h.driver) setDriver(h.driver);
    $("avatars").textContent = h.avatars ? h.avatars.map((d, i) => `${i + 1}: ${d}`).join(" · ") : "-";
    if (h.model_ms != null) { $("model-ms").textContent = (h.model_ms / h.batch).toFixed(1); $("batch").textContent = h.batch; }
    if (h.name) $("save-name").placeholder = h.name;
    document.querySelectorAll("#bindings tr").forEach((tr) => tr.classList.toggle("active", Number(tr.dataset.code) === h.action));
    if (mw.info && mw.info.latent && mw.mode === "step") requestPreview();
  }

  // ---- latent-action worlds: a strip with the next frame under each latent code
  let previewPending = false, previewStep = -1;
  function requestPreview() {
    if (previewPending || !mw.header || mw.header.step === previewStep) return;
    previewPending = true; previewStep = mw.header.step;
    send({ type: "preview" });
  }
  function buildPreview(latent) {
    const strip = $("preview");
    strip.innerHTML = "";
    $("preview-box").hidden = !latent;
    if (!latent) return;
    latent.controls.forEach((ctl, k) => {
      const fig = document.createElement("figure");
      const img = document.createElement("img"); img.alt = `latent ${k + 1}`;
      const cap = document.createElement("figcaption"); cap.textContent = k < 9 ? String(k + 1) : `#${k + 1}`;
      fig.title = `latent action ${k + 1}: click to send`;
      fig.onclick = () => { send({ type: "action", action: ctl }); if (mw.mode === "realtime") setTimeout(() => send({ type: "release" }), 250); };
      fig.append(img, cap); strip.append(fig);
    });
  }
  setInterval(() => { if (mw.info && mw.info.latent && mw.mode === "realtime") requestPreview(); }, 1000);

  function onJson(m) {
    if (m.type === "hello") {
      mw.info = m; bindings = m.bindings;
      $("world-name").textContent = `${m.world} · ${m.env_id}` +
        (m.shared ? ` · shared world “${m.shared.name}” at ${m.shared.rate} ticks/s, ${m.shared.avatars} avatar(s) (You drive: take a free one)` : "");
      $("new-data").disabled = !m.has_prompts || !!m.shared;
      for (const id of ["reset", "new-scratch", "upload", "save-name", "save"]) $(id).disabled = !!m.shared;  // one shared history
      $("driver-agent").disabled = !m.agent;
      $("words-row").hidden = !m.words;  // a unified world: start from words
      if (m.words) $("words").title = "words this world knows: " + m.words.join(" ");
      if (m.agent) $("driver-agent").title = `agent “${m.agent.name}” (${m.agent.real_steps} real steps` +
        (m.agent.mean_return != null ? `, real return ${Number(m.agent.mean_return).toFixed(2)}` : "") + ") drives (key G)";
      const tbody = $("bindings").querySelector("tbody");
      tbody.innerHTML = "";
      for (const b of bindings) {
        const tr = document.createElement("tr");
        tr.dataset.action = b.action;
        tr.dataset.code = b.code ?? b.action;  // the world action it sends (latent worlds: a code)
        tr.title = "click to send";
        const k = document.createElement("td"); k.className = "key"; k.textContent = b.label;
        const mapped = m.latent && !m.latent.controls.includes(b.action) ? ` → latent ${b.code + 1}` : "";
        const a = document.createElement("td"); a.textContent = b.meaning + mapped + (b.action === m.idle_action ? " (idle)" : "");
        tr.append(k, a);
        tr.onclick = () => { send({ type: "action", action: b.action }); if (mw.mode === "realtime") setTimeout(() => send({ type: "release" }), 250); };
        tbody.append(tr);
      }
      setMode(m.mode);
      buildPreview(m.latent);
      mw.previews = 0;
      send({ type: "list" });
    } else if (m.type === "error") {
      previewPending = false;
      mw.errors.push(m.message); status(m.message, true);
    } else if (m.type === "saved") {
      status(`saved “${m.name}” at step ${m.steps}`); send({ type: "list" });
    } else if (m.type === "sessions") {
      renderSessions(m.sessions);
    } else if (m.type === "preview") {
      previewPending = false; mw.previews += 1;
      document.querySelectorAll("#preview img").forEach((img, k) => { img.src = m.frames[k]; });
    } else if (m.type === "mode") {
      setMode(m.mode);
    } else if (m.type === "driver") {
      setDriver(m.driver);
    }
  }

  function setMode(mode) {
    mw.mode = mode;
    $("mode-realtime").classList.toggle("on", mode === "realtime");
    $("mode-step").classList.toggle("on", mode === "step");
  }

  function setDriver(driver) {
    mw.driver = driver;
    $("driver").textContent = driver;
    $("driver-you").classList.toggle("on", driver === "you");
    $("driver-agent").classList.toggle("on", driver === "agent");
  }

  function renderSessions(list) {
    const ul = $("sessions");
    ul.innerHTML = "";
    if (!list.length) { ul.innerHTML = "<li><small>none yet</small></li>"; return; }
    for (const s of list) {
      const li = document.createElement("li");
      const img = document.createElement("img");
      img.src = withToken(`/api/sessions/${encodeURIComponent(s.name)}/thumbnail.png`);
      img.alt = "";
      const meta = document.createElement("div"); meta.className = "meta";
      meta.textContent = s.name;
      const sm = document.createElement("small");
      sm.textContent = `${s.steps} steps · ${new Date(s.updated * 1000).toLocaleString()}${s.same_world ? "" : " · other world"}`;
      meta.append(sm);
      const b = document.createElement("button"); b.textContent = "Resume"; b.disabled = !s.same_world;
      b.onclick = () => { send({ type: "load", name: s.name }); $("save-name").value = s.name; };
      li.append(img, meta, b); ul.append(li);
    }
  }

  // ---- keys: chords of held keys -> action
  const norm = (k) => k.length === 1 ? k.toLowerCase() : k;
  const bound = (k) => bindings.some((b) => b.keys.includes(k));
  const same = (keys, set) => keys.length === set.size && keys.every((k) => set.has(k));
  function actionFor(newKey) {
    const exact = bindings.find((b) => b.keys.length && same(b.keys, held));
    if (exact) return exact.action;
    const single = bindings.find((b) => b.keys.length === 1 && b.keys[0] === newKey);
    return single ? single.action : null;
  }
  const typing = (e) => e.target instanceof HTMLInputElement;
  document.addEventListener("keydown", (e) => {
    const k = norm(e.key);
    if (k === "g" && !bound(k) && !typing(e) && !e.repeat && mw.info && mw.info.agent) {  // toggle who drives
      send({ type: "driver", driver: mw.driver === "agent" ? "you" : "agent" }); return;
    }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey || !bound(k)) return;
    e.preventDefault();
    if (e.repeat) return;
    held.add(k);
    const a = actionFor(k);
    if (a !== null) send({ type: "action", action: a });
  });
  document.addEventListener("keyup", (e) => {
    const k = norm(e.key);
    if (!held.delete(k) || mw.mode !== "realtime") return;
    if (held.size === 0) { send({ type: "release" }); return; }
    const exact = bindings.find((b) => b.keys.length && same(b.keys, held));
    if (exact) send({ type: "action", action: exact.action });
  });
  window.addEventListener("blur", () => { if (held.size) { held.clear(); if (mw.mode === "realtime") send({ type: "release" }); } });

  // ---- buttons
  $("mode-realtime").onclick = () => send({ type: "mode", mode: "realtime" });
  $("mode-step").onclick = () => send({ type: "mode", mode: "step" });
  $("driver-you").onclick = () => send({ type: "driver", driver: "you" });
  $("driver-agent").onclick = () => send({ type: "driver", driver: "agent" });
  $("reset").onclick = () => send({ type: "reset" });
  $("new-scratch").onclick = () => send({ type: "new", source: "scratch" });
  $("new-data").onclick = () => send({ type: "new", source: "data" });
  $("new-words").onclick = () => send({ type: "new", source: "scratch", text: $("words").value });
  $("words").addEventListener("keydown", (e) => { e.stopPropagation(); if (e.key === "Enter") $("new-words").click(); });
  $("refresh").onclick = () => send({ type: "list" });
  $("save").onclick = () => {
    const name = $("save-name").value.trim() || $("save-name").placeholder;
    if (!/^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$/.test(name) || name.includes("..")) {
      status("name: 1-64 letters, digits, spaces, _ - . (starting with a letter or digit)", true); return;
    }
    send({ type: "save", name });
  };
  $("upload").onchange = async (e) => {
    const f = e.target.files[0];
    e.target.value = "";
    if (!f) return;
    if (f.size > 4 * 1024 * 1024) { status("image is over 4 MiB", true); return; }
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(await f.arrayBuffer()); status(`prompting from ${f.name}…`); }
  };
  document.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => canvas.focus()));

  // ---- FPS readout: frames produced by the ticker in the last second
  setInterval(() => {
    const now = performance.now();
    while (times.length && now - times[0] > 1000) times.shift();
    mw.fps = times.length;
    $("fps").textContent = times.length.toFixed(1);
  }, 250);

  connect();
  canvas.focus();
})();

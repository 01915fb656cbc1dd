// Live mode: the active model runs here, in the browser, on camera frames.
// Preprocessing as on the server: the whole frame squashed to the card's
// input size, RGB as float 0..255 (the model scales the pixels itself).
import { Tensor, isWebGPUSupported, loadAndCompile, loadLiteRt } from "@litertjs/core";

const root = document.getElementById("live");
const cfg = root.dataset;
const $ = (id) => document.getElementById(id);
const ui = {
  status: $("live-status"),
  answer: $("live-answer"),
  toggle: $("live-toggle"),
  repeat: $("live-repeat"),
  save: $("live-save"),
  speak: $("live-speak"),
  autosave: $("live-autosave"),
  queue: $("live-queue"),
  denied: $("live-denied"),
  deniedReason: $("live-denied-reason"),
  error: $("live-error"),
  video: $("live-video"),
};

// An answer is spoken once it is the same over this many frames in a row...
const STABLE_FRAMES = 3;
// ...and forgotten after this long with no answer, so that a note shown
// again is spoken again.
const FORGET_MS = 2500;
// Frames with less detail than this (the standard deviation of their grey
// levels, 0..255) show nothing: a covered lens, a blank wall.
const FLAT_STDDEV = 8;
const NOT_A_NOTE = "not_a_bill";
const CSRF = document.querySelector("input[name=csrfmiddlewaretoken]").value;

const state = {
  model: null, // {compiled, version, classes, threshold, size, accelerator}
  stream: null,
  running: false,
  candidate: null,
  count: 0,
  spoken: null,
  lastSeen: 0,
  lastSpokenText: "",
  audio: null,
  saving: false,
  generation: 0, // which camera loop is current: a stopped one must not resume
  busy: Promise.resolve(), // model runs and swaps, one at a time
};

// One model call at a time: the camera loop, "Save this" and a new version
// arriving would otherwise use (or delete) the model at once.
function exclusive(fn) {
  const run = state.busy.then(fn, fn);
  state.busy = run.catch(() => undefined);
  return run;
}

// What the page did, for whoever wants to know (its tests, a curious user's
// console): every announcement and spoken answer in order, and the timings.
const record = (window.usbillsLive = {
  statuses: [],
  spoken: [],
  frames: [],
  saves: [],
  cues: [],
  timings: { pageStart: performance.timeOrigin, ready: null, modelBytes: 0 },
  backend: "",
  version: "",
});

const display = (key) =>
  key === NOT_A_NOTE ? "Not a US note" : "$" + key.replace(/^usd_/, "");

function setStatus(text) {
  if (ui.status.textContent === text) return;
  ui.status.textContent = text;
  record.statuses.push({ text, t: performance.now() });
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

// Speech and cues --------------------------------------------------------------

function say(text) {
  record.spoken.push({ text, t: performance.now() });
  state.lastSpokenText = text;
  ui.answer.textContent = text;
  if (ui.speak.checked && "speechSynthesis" in window) {
    window.speechSynthesis.cancel();
    const utterance = new SpeechSynthesisUtterance(text);
    utterance.lang = "en-US";
    window.speechSynthesis.speak(utterance);
  }
}

// EyeNote's design: one short cue for "a note", another for "not a US note",
// felt or heard before the words.
function cue(found) {
  record.cues.push(found ? "note" : "not a note");
  if (navigator.vibrate) navigator.vibrate(found ? 80 : [60, 80, 60]);
  const audio = state.audio;
  if (!audio) return;
  const beeps = found ? [[880, 0]] : [[260, 0], [260, 0.16]];
  for (const [hz, at] of beeps) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = hz;
    gain.gain.value = 0.15;
    osc.connect(gain).connect(audio.destination);
    osc.start(audio.currentTime + at);
    osc.stop(audio.currentTime + at + 0.11);
  }
}

// The model ---------------------------------------------------------------------

async function fetchJson(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.json();
}

let runtimeReady = null;
function loadRuntime() {
  // The threaded build needs cross-origin isolation, which this page asks for.
  runtimeReady ??= loadLiteRt(cfg.wasmUrl, { threads: self.crossOriginIsolated === true });
  return runtimeReady;
}

async function compile(bytes) {
  if (isWebGPUSupported() && navigator.gpu && (await navigator.gpu.requestAdapter())) {
    try {
      return { compiled: await loadAndCompile(bytes, { accelerator: "webgpu" }), accelerator: "webgpu" };
    } catch (error) {
      console.warn("WebGPU failed, using WebAssembly", error);
    }
  }
  return { compiled: await loadAndCompile(bytes, { accelerator: "wasm" }), accelerator: "wasm" };
}

async function loadModel() {
  const info = await fetchJson(cfg.modelUrl);
  if (state.model && info.version === state.model.version) return false;
  if (!info.runs_in_browser) {
    throw new Error(`The active model (${info.version}) cannot run in the browser: ${info.reason}.`);
  }
  const [card, bytes] = await Promise.all([
    fetchJson(info.card),
    fetch(info.model, { credentials: "same-origin" }).then((r) => {
      if (!r.ok) throw new Error(`the model answered ${r.status}`);
      return r.arrayBuffer();
    }),
  ]);
  await loadRuntime();
  const { compiled, accelerator } = await compile(new Uint8Array(bytes));
  await exclusive(() => swap(info, card, compiled, accelerator, bytes.byteLength));
  return true;
}

function swap(info, card, compiled, accelerator, size) {
  const old = state.model;
  state.model = {
    compiled,
    accelerator,
    version: info.version,
    classes: card.classes,
    threshold: card.threshold,
    size: card.input.size,
    urls: [info.model, info.card],
  };
  record.version = info.version;
  record.backend = accelerator + (self.crossOriginIsolated ? ", threaded" : ", one thread");
  record.timings.modelBytes = size;
  if (old) old.compiled.delete();
  // A new model may see the note differently: say what it sees.
  state.spoken = null;
}

const frameCanvas = document.createElement("canvas");
const frameContext = frameCanvas.getContext("2d", { willReadFrequently: true });

// The frame squashed to size x size, as the model's input and its flatness.
function pixels(source, width, height) {
  const size = state.model.size;
  frameCanvas.width = size;
  frameCanvas.height = size;
  frameContext.imageSmoothingQuality = "medium";
  frameContext.drawImage(source, 0, 0, width, height, 0, 0, size, size);
  const rgba = frameContext.getImageData(0, 0, size, size).data;
  const input = new Float32Array(size * size * 3);
  let sum = 0;
  let sumSq = 0;
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    input[j] = rgba[i];
    input[j + 1] = rgba[i + 1];
    input[j + 2] = rgba[i + 2];
    const grey = (rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3;
    sum += grey;
    sumSq += grey * grey;
  }
  const n = size * size;
  const stddev = Math.sqrt(Math.max(0, sumSq / n - (sum / n) ** 2));
  return { input, stddev };
}

// {key, label, confidence, answer}: key is a note, NOT_A_NOTE, or null (nothing sure).
function classify(source, width, height, options) {
  return exclusive(() => classifyNow(source, width, height, options));
}

async function classifyNow(source, width, height, { always = false } = {}) {
  const model = state.model;
  const { input, stddev } = pixels(source, width, height);
  if (stddev < FLAT_STDDEV && !always) return { key: null, label: null, confidence: 0, flat: true };
  let tensor = new Tensor(input, [1, model.size, model.size, 3]);
  if (model.accelerator === "webgpu") {
    const moved = await tensor.moveTo("webgpu");
    tensor = moved;
  }
  const outputs = await model.compiled.run([tensor]);
  tensor.delete();
  let output = outputs[0];
  if (model.accelerator === "webgpu") output = await output.moveTo("wasm");
  const probs = Float32Array.from(output.toTypedArray());
  output.delete();
  let best = 0;
  for (let i = 1; i < probs.length; i++) if (probs[i] > probs[best]) best = i;
  const label = model.classes[best];
  const confidence = probs[best];
  const sure = confidence >= model.threshold;
  // As on the server: a note is an answer only above the threshold.
  const answer = label !== NOT_A_NOTE && sure ? label : "unknown";
  return { key: sure ? label : null, label, confidence, answer, flat: false };
}

// The camera loop ------------------------------------------------------------------

function nextFrame(video) {
  return new Promise((resolve) => {
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => resolve());
    else requestAnimationFrame(() => resolve());
  });
}

async function loop(generation) {
  const video = ui.video;
  while (state.running && generation === state.generation) {
    await nextFrame(video);
    if (!state.running || generation !== state.generation || !video.videoWidth) continue;
    const started = performance.now();
    let result;
    try {
      result = await classify(video, video.videoWidth, video.videoHeight);
    } catch (error) {
      showError(`The model failed on a frame: ${error.message}`);
      stop();
      return;
    }
    const t = performance.now();
    record.frames.push({ t, ms: t - started, key: result.key, label: result.label, confidence: result.confidence });
    if (record.frames.length > 5000) record.frames.splice(0, 1000);
    judge(result, t);
  }
}

function judge(result, now) {
  const key = result.key;
  if (key === state.candidate) state.count += 1;
  else {
    state.candidate = key;
    state.count = 1;
  }
  if (key !== null) state.lastSeen = now;
  if (key !== null && state.count >= STABLE_FRAMES && key !== state.spoken) {
    state.spoken = key;
    cue(key !== NOT_A_NOTE);
    say(display(key));
    setStatus(key === NOT_A_NOTE ? "Not a US note. Looking." : `${display(key)}. Looking.`);
    ui.save.disabled = false;
    if (ui.autosave.checked) saveFrame();
  } else if (key === null && state.spoken !== null && now - state.lastSeen > FORGET_MS) {
    state.spoken = null;
    ui.answer.textContent = "";
    setStatus("Looking");
  }
}

async function start() {
  showError("");
  ui.denied.hidden = true;
  state.audio ??= window.AudioContext ? new AudioContext() : null;
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: { ideal: "environment" }, width: { ideal: 640 }, height: { ideal: 480 } },
      audio: false,
    });
  } catch (error) {
    ui.deniedReason.textContent =
      error.name === "NotAllowedError"
        ? "Your browser did not allow this page to use the camera."
        : error.name === "NotFoundError"
          ? "No camera was found."
          : `The camera could not be opened (${error.name}).`;
    ui.denied.hidden = false;
    setStatus("Camera blocked");
    return;
  }
  ui.video.srcObject = state.stream;
  await ui.video.play();
  state.running = true;
  state.candidate = null;
  state.count = 0;
  state.spoken = null;
  ui.toggle.textContent = "Stop the camera";
  setStatus("Camera on. Looking");
  loop(++state.generation);
}

function stop() {
  state.running = false;
  state.generation += 1;
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  ui.video.srcObject = null;
  ui.toggle.textContent = "Start the camera";
  setStatus("Camera off");
}

// Saving, queued in the browser until the server has it ----------------------

function openQueue() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open("usbills-live", 1);
    request.onupgradeneeded = () => request.result.createObjectStore("saves", { autoIncrement: true });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function queueOp(mode, fn) {
  const db = await openQueue();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction("saves", mode);
      const result = fn(tx.objectStore("saves"));
      tx.oncomplete = () => resolve(result.result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

async function showQueue() {
  const waiting = await queueOp("readonly", (store) => store.count());
  ui.queue.textContent = waiting
    ? `${waiting} saved ${waiting === 1 ? "photo is" : "photos are"} waiting to be sent.`
    : "";
}

async function saveFrame() {
  const video = ui.video;
  if (!state.running || !video.videoWidth) {
    setStatus("Start the camera first");
    return;
  }
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  // The browser's answer for exactly the frame that is kept.
  const result = await classify(canvas, canvas.width, canvas.height, { always: true });
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  await queueOp("readwrite", (store) =>
    store.add({
      blob,
      label: result.label,
      answer: result.answer,
      confidence: result.confidence,
      version: state.model.version,
      taken: Date.now(),
    }),
  );
  setStatus("Saving the photo");
  await showQueue();
  flush();
}

async function flush() {
  if (state.saving) return;
  state.saving = true;
  try {
    const entries = await queueOp("readonly", (store) => store.getAllKeys());
    for (const key of entries) {
      const item = await queueOp("readonly", (store) => store.get(key));
      if (!item) continue;
      const form = new FormData();
      form.append("image", item.blob, `live-${item.taken}.jpg`);
      form.append("device_label", item.label);
      form.append("device_answer", item.answer);
      form.append("device_confidence", String(item.confidence));
      form.append("device_model_version", item.version);
      let response;
      try {
        response = await fetch(cfg.saveUrl, {
          method: "POST",
          body: form,
          headers: { "X-CSRFToken": CSRF, Accept: "application/json" },
          credentials: "same-origin",
          redirect: "manual",
        });
      } catch {
        setStatus("Offline: the photo is kept on this phone and sent when the connection returns");
        return;
      }
      if (response.status === 201) {
        const body = await response.json();
        await queueOp("readwrite", (store) => store.delete(key));
        // The count on the page follows each photo sent, not only the last.
        await showQueue();
        record.saves.push(body);
        setStatus(
          body.agrees
            ? `Saved. The server agrees: ${body.answer_display}`
            : `Saved. The server says ${body.answer_display}; a reviewer will look at it`,
        );
      } else if (response.status === 400) {
        // The server will never take this one: say why and drop it.
        const body = await response.json();
        await queueOp("readwrite", (store) => store.delete(key));
        setStatus(`Not saved: ${body.error.message}`);
      } else {
        // Signed out, rate-limited or the server is down: keep it and try later.
        setStatus(
          response.type === "opaqueredirect" || response.status === 403
            ? "Sign in again to send the saved photos"
            : "The server did not take the photo yet; it will try again",
        );
        return;
      }
    }
  } finally {
    state.saving = false;
    await showQueue();
  }
}

// Offline ------------------------------------------------------------------------------

async function keepForOffline() {
  if (!("serviceWorker" in navigator) || !window.caches) return;
  try {
    await navigator.serviceWorker.register(cfg.swUrl);
    // This first visit loaded everything before the worker existed: put
    // what it loaded in the worker's cache now.
    const cache = await caches.open(cfg.cache);
    const urls = new Set([location.pathname, cfg.modelUrl, ...state.model.urls]);
    for (const entry of performance.getEntriesByType("resource")) {
      const url = new URL(entry.name);
      const ours = url.pathname.startsWith(cfg.staticPrefix) || url.pathname.startsWith(cfg.wasmUrl);
      if (url.origin === location.origin && ours) {
        urls.add(url.pathname);
      }
    }
    for (const url of urls) {
      if (url === location.pathname || url === cfg.modelUrl || !(await cache.match(url))) {
        await cache.add(url);
      }
    }
    record.timings.cached = performance.now();
  } catch (error) {
    console.warn("live mode will not work offline:", error);
  }
}

async function followActivations() {
  try {
    if (await loadModel()) setStatus(`Model updated to ${state.model.version}`);
  } catch {
    // Offline, or the server is busy: the loaded model keeps working.
  }
}

// Start -----------------------------------------------------------------------------

async function main() {
  try {
    await loadModel();
  } catch (error) {
    showError(`Live mode cannot start: ${error.message} You can still upload a photo.`);
    setStatus("Live mode is not available");
    return;
  }
  record.timings.ready = performance.now();
  ui.toggle.disabled = false;
  ui.repeat.disabled = false;
  setStatus("Ready. Press “Start the camera”");
  ui.toggle.addEventListener("click", () => (state.running ? stop() : start()));
  ui.repeat.addEventListener("click", () => {
    if (state.lastSpokenText) say(state.lastSpokenText);
    else setStatus(state.running ? "Looking: no note yet" : "Camera off");
  });
  ui.save.addEventListener("click", saveFrame);
  ui.autosave.checked = localStorage.getItem("usbills-live-autosave") === "1";
  ui.autosave.addEventListener("change", () =>
    localStorage.setItem("usbills-live-autosave", ui.autosave.checked ? "1" : "0"),
  );
  window.addEventListener("online", flush);
  setInterval(followActivations, Number(cfg.pollSeconds) * 1000);
  setInterval(flush, 60_000);
  showQueue();
  flush();
  keepForOffline();
}

main();

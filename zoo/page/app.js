// The drawing page of `zoo serve`: draw with a mouse, pen or finger (pointer events), and ask
// /api/predict after each stroke. Nothing is fetched from anywhere but this server.
"use strict";

const canvas = document.getElementById("canvas");
const pen = canvas.getContext("2d");
const picker = document.getElementById("model");
let models = [];
let drawing = null; // the id of the pointer drawing, one at a time
let pending = null; // the latest request; older answers are dropped
let strokes = 0;
let lastUpload = null; // the file last uploaded, when it is what the page shows
const LAYOUTS = {
  mnist: "and laid out as MNIST's digits are.",
  kept: "and kept: it was laid out as MNIST's digits are already.",
  "as-is": "and taken as it is.",
};

function blank() {
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, canvas.width, canvas.height);
  strokes = 0;
}

function point(event) {
  const box = canvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * canvas.width) / box.width,
    ((event.clientY - box.top) * canvas.height) / box.height,
  ];
}

canvas.addEventListener("pointerdown", (event) => {
  if (drawing !== null || !event.isPrimary || event.button !== 0) return;
  event.preventDefault();
  canvas.setPointerCapture(event.pointerId);
  drawing = event.pointerId;
  lastUpload = null;
  const [x, y] = point(event);
  pen.strokeStyle = "#000";
  pen.lineWidth = 20;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(x, y);
  pen.lineTo(x + 0.01, y);
  pen.stroke();
});

canvas.addEventListener("pointermove", (event) => {
  if (event.pointerId !== drawing) return;
  const [x, y] = point(event);
  pen.lineTo(x, y);
  pen.stroke();
});

function endStroke(event) {
  if (event.pointerId !== drawing) return;
  drawing = null;
  strokes += 1;
  sendDrawing();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);
canvas.addEventListener("lostpointercapture", endStroke);

function sendDrawing() {
  canvas.toBlob((blob) => send(blob, "drawing.png"), "image/png");
}

document.getElementById("clear").addEventListener("click", () => {
  pending = null; // an answer on its way is for what was cleared
  lastUpload = null;
  blank();
  show(null);
  setStatus("");
});

document.getElementById("upload").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) {
    lastUpload = file;
    send(file, file.name);
  }
  event.target.value = "";
});

picker.addEventListener("change", () => {
  describeModel();
  if (lastUpload !== null) send(lastUpload, lastUpload.name);
  else if (strokes > 0) sendDrawing();
});

function describeModel() {
  const chosen = models.find((model) => model.name === picker.value);
  const summary = document.getElementById("model-summary");
  if (!chosen) { summary.textContent = ""; return; }
  const threshold = chosen.unfamiliar_threshold === null
    ? "No unfamiliarity threshold is known for it."
    : `Flags inputs whose entropy reaches ${chosen.unfamiliar_threshold.toFixed(3)} nats ` +
      `(flagging 95% of FashionMNIST's test images).`;
  summary.textContent = `${chosen.summary}. ${threshold}`;
}

async function send(blob, name) {
  const form = new FormData();
  form.append("image", blob, name);
  form.append("model", picker.value);
  const request = fetch("/api/predict", { method: "POST", body: form });
  pending = request;
  setStatus("");
  try {
    const response = await request;
    const isJson = (response.headers.get("content-type") || "").includes("application/json");
    const answer = isJson ? await response.json() : { error: `error ${response.status}` };
    if (pending !== request) return;
    if (!response.ok) { show(null); setStatus(answer.error || `error ${response.status}`); return; }
    show(answer);
  } catch (error) {
    if (pending === request) setStatus(`the server did not answer: ${error}`);
  }
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function show(answer) {
  const byId = (id) => document.getElementById(id);
  byId("bars").replaceChildren();
  byId("votes").replaceChildren();
  const seen = byId("seen").getContext("2d");
  seen.clearRect(0, 0, 28, 28);
  if (answer === null) {
    byId("prediction").textContent = "?";
    byId("confidence").textContent = "Draw something to begin.";
    byId("unfamiliar").textContent = "";
    byId("unfamiliar").className = "flag";
    for (const id of ["entropy", "aleatoric", "mi"]) byId(id).textContent = "-";
    byId("aleatoric-bar").style.width = "0";
    byId("mi-bar").style.width = "0";
    byId("prepared").textContent = "";
    return;
  }
  byId("prediction").textContent = answer.label;
  byId("confidence").textContent =
    `${(100 * answer.confidence).toFixed(1)}% sure it is ${answer.label}`;
  const flag = byId("unfamiliar");
  const unfamiliar = answer.unfamiliar;
  if (unfamiliar.threshold === null) {
    flag.textContent = "No threshold for unfamiliar inputs is known for this model.";
    flag.className = "flag";
  } else if (unfamiliar.flagged) {
    flag.textContent = "This looks unlike the digits the model learned from: do not trust the answer.";
    flag.className = "flag unfamiliar";
  } else {
    flag.textContent = "This looks like the digits the model learned from.";
    flag.className = "flag familiar";
  }
  const classes = models.find((model) => model.name === answer.model)?.classes
    ?? answer.probabilities.map((_, index) => String(index));
  answer.probabilities.forEach((probability, index) => {
    const label = document.createElement("span");
    label.textContent = classes[index];
    const bar = document.createElement("div");
    bar.className = index === answer.class ? "bar top" : "bar";
    const fill = document.createElement("div");
    fill.style.width = `${(100 * probability).toFixed(1)}%`;
    bar.append(fill);
    const value = document.createElement("span");
    value.textContent = `${(100 * probability).toFixed(1)}%`;
    byId("bars").append(label, bar, value);
  });
  for (const vote of answer.votes) {
    const cell = document.createElement("span");
    cell.className = vote === answer.label ? "vote" : "vote other";
    cell.textContent = vote;
    byId("votes").append(cell);
  }
  byId("entropy").textContent = `${answer.entropy.toFixed(3)} nats`;
  byId("aleatoric").textContent = `${answer.aleatoric.toFixed(3)} nats`;
  byId("mi").textContent = `${answer.mutual_information.toFixed(3)} nats`;
  const most = Math.log(answer.probabilities.length);
  byId("aleatoric-bar").style.width = `${(100 * answer.aleatoric) / most}%`;
  byId("mi-bar").style.width = `${(100 * answer.mutual_information) / most}%`;
  const image = seen.createImageData(28, 28);
  answer.pixels.flat().forEach((value, index) => {
    image.data.set([value, value, value, 255], 4 * index);
  });
  seen.putImageData(image, 0, 0);
  const prepared = answer.prepared;
  byId("prepared").textContent = [
    prepared.inverted ? "Inverted to light ink on dark" : "Not inverted",
    prepared.polarity === "detected" ? "(read from its border)" : "(as sent)",
    LAYOUTS[prepared.layout],
  ].join(" ");
}

async function start() {
  blank();
  const response = await fetch("/api/models");
  models = (await response.json()).models;
  for (const model of models) {
    const option = document.createElement("option");
    option.value = model.name;
    option.textContent = model.name;
    picker.append(option);
  }
  describeModel();
}

start().catch((error) => setStatus(`could not list the models: ${error}`));

// @ts-check
import { HttpError, fetchModels, storeKey, streamChat } from './api.js';
import { Attachments } from './attachments.js';
import { parseMarkdown, renderMarkdown } from './markdown.js';

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @returns {T}
 */
function byId(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return /** @type {T} */ (e);
}

const ui = {
  model: byId('model-name'),
  newChat: /** @type {HTMLButtonElement} */ (byId('new-chat')),
  keyForm: /** @type {HTMLFormElement} */ (byId('key-form')),
  keyInput: /** @type {HTMLInputElement} */ (byId('api-key')),
  transcript: byId('transcript'),
  empty: byId('empty'),
  error: byId('error'),
  composer: /** @type {HTMLFormElement} */ (byId('composer')),
  prompt: /** @type {HTMLTextAreaElement} */ (byId('prompt')),
  imageInput: /** @type {HTMLInputElement} */ (byId('image-input')),
  stop: /** @type {HTMLButtonElement} */ (byId('stop')),
  send: /** @type {HTMLButtonElement} */ (byId('send')),
  temperature: /** @type {HTMLInputElement} */ (byId('temperature')),
  maxTokens: /** @type {HTMLInputElement} */ (byId('max-tokens')),
  detail: /** @type {HTMLSelectElement} */ (byId('detail')),
};

const attachments = new Attachments(byId('attachments'));
/** @type {{ role: string, content: unknown }[]} the conversation so far, images included */
let history = [];
/** @type {string | null} */
let model = null;
/** @type {AbortController | null} */
let running = null;

/** @param {string | null} message */
function showError(message) {
  ui.error.textContent = message ?? '';
  ui.error.hidden = message === null;
}

/** @param {boolean} ready */
function setReady(ready) {
  ui.send.disabled = !ready || running !== null;
  ui.stop.disabled = running === null;
  ui.newChat.disabled = running !== null;
}

function scrollToEnd() {
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

/**
 * @param {string} text
 * @param {{ name: string, url: string }[]} images
 */
function addUserTurn(text, images) {
  ui.empty.hidden = true;
  const turn = document.createElement('article');
  turn.className = 'turn user';
  turn.setAttribute('aria-label', 'You');
  if (images.length) {
    const row = document.createElement('div');
    row.className = 'turn-images';
    for (const im of images) {
      const img = document.createElement('img');
      img.src = im.url;
      img.alt = im.name;
      row.append(img);
    }
    turn.append(row);
  }
  if (text) {
    const p = document.createElement('p');
    p.className = 'user-text';
    p.textContent = text;
    turn.append(p);
  }
  ui.transcript.append(turn);
  scrollToEnd();
  return turn;
}

function addAssistantTurn() {
  const turn = document.createElement('article');
  turn.className = 'turn assistant';
  turn.setAttribute('aria-label', 'Assistant');
  const content = document.createElement('div');
  content.className = 'content';
  content.dataset.testid = 'assistant-message';
  const stats = document.createElement('p');
  stats.className = 'stats';
  stats.dataset.testid = 'stats';
  stats.textContent = 'waiting for the first token…';
  turn.append(content, stats);
  // Screen readers wait for the whole answer instead of announcing every token.
  turn.setAttribute('aria-busy', 'true');
  ui.transcript.append(turn);
  scrollToEnd();
  return { turn, content, stats };
}

/** @param {string} name */
function showModel(name) {
  model = name;
  ui.model.textContent = name;
  ui.keyForm.hidden = true;
  setReady(true);
}

async function loadModel() {
  try {
    const models = await fetchModels();
    showModel(models[0] ?? 'unknown');
    showError(null);
    ui.prompt.focus();
  } catch (e) {
    if (e instanceof HttpError && e.status === 401) {
      ui.model.textContent = 'API key needed';
      ui.keyForm.hidden = false;
      setReady(false);
      ui.keyInput.focus();
      // The first visit has no key yet: only a refused key is worth an error.
      if (ui.keyInput.value) showError(e.message);
      return;
    }
    ui.model.textContent = 'unavailable';
    showError(e instanceof Error ? e.message : String(e));
  }
}

/** The request fields from the settings panel; empty ones are left to the server's defaults. */
function samplingFields() {
  /** @type {Record<string, number>} */
  const fields = {};
  if (ui.temperature.value !== '') fields.temperature = Number(ui.temperature.value);
  if (ui.maxTokens.value !== '') fields.max_tokens = Number(ui.maxTokens.value);
  return fields;
}

/**
 * @param {number} t0 when the request was sent
 * @param {number | null} tFirst when the first text arrived
 * @param {number} tEnd when the stream ended
 * @param {import('./api.js').Usage | null} usage
 * @param {boolean} stopped
 */
function statsText(t0, tFirst, tEnd, usage, stopped) {
  const parts = [];
  if (tFirst !== null) parts.push(`TTFT ${Math.round(tFirst - t0)} ms`);
  if (usage) {
    // Over the whole request: a fast model's tokens can arrive together, so a rate from
    // the first token on would be noise.
    const n = usage.completion_tokens;
    const secs = (tEnd - t0) / 1000;
    parts.push(`${n} token${n === 1 ? '' : 's'}, ${secs > 0 ? (n / secs).toFixed(1) : '–'} tokens/s`);
    parts.push(`${usage.prompt_tokens_details?.cached_tokens ?? 0} cached tokens`);
  }
  if (stopped) parts.push('stopped');
  return parts.join(' · ');
}

async function send() {
  if (running || !model) return;
  const text = ui.prompt.value.trim();
  if (!text && attachments.items.length === 0) return;
  showError(null);
  const images = attachments.take();
  const detail = ui.detail.value;
  const userMessage = {
    role: 'user',
    content: [...images.map((im) => ({ type: 'image_url', image_url: { url: im.url, detail } })), ...(text ? [{ type: 'text', text }] : [])],
  };
  const userTurn = addUserTurn(text, images);
  const answer = addAssistantTurn();
  ui.prompt.value = '';
  const controller = new AbortController();
  running = controller;
  setReady(true);

  let reply = '';
  const t0 = performance.now();
  /** @type {number | null} */
  let tFirst = null;
  /** @type {import('./api.js').Usage | null} */
  let usage = null;
  let pending = false;
  const render = () => {
    pending = false;
    renderMarkdown(answer.content, parseMarkdown(reply), document);
    scrollToEnd();
  };
  try {
    await streamChat(
      { model, messages: [...history, userMessage], ...samplingFields() },
      {
        signal: controller.signal,
        onText(piece) {
          if (tFirst === null) {
            tFirst = performance.now();
            answer.stats.textContent = 'answering…';
          }
          reply += piece;
          // Re-render at most once a frame however fast tokens arrive.
          if (!pending) {
            pending = true;
            requestAnimationFrame(render);
          }
        },
        onUsage(u) {
          usage = u;
        },
      },
    );
    const tEnd = performance.now();
    render();
    history.push(userMessage, { role: 'assistant', content: reply });
    answer.stats.textContent = statsText(t0, tFirst, tEnd, usage, false);
  } catch (e) {
    render();
    if (controller.signal.aborted && reply) {
      // A stopped answer stays in the conversation as far as it got.
      history.push(userMessage, { role: 'assistant', content: reply });
      answer.stats.textContent = statsText(t0, tFirst, performance.now(), null, true);
    } else {
      // Nothing to keep: the message goes back to the composer to be fixed or resent.
      userTurn.remove();
      answer.turn.remove();
      ui.empty.hidden = history.length > 0;
      ui.prompt.value = text;
      attachments.restore(images);
      if (!controller.signal.aborted) showError(e instanceof Error ? e.message : String(e));
      if (e instanceof HttpError && e.status === 401) {
        storeKey(null);
        void loadModel();
      }
    }
  } finally {
    answer.turn.removeAttribute('aria-busy');
    running = null;
    setReady(true);
    ui.prompt.focus();
  }
}

function newChat() {
  if (running) return;
  history = [];
  for (const turn of ui.transcript.querySelectorAll('.turn')) turn.remove();
  ui.empty.hidden = false;
  showError(null);
  ui.prompt.focus();
}

/** @param {Iterable<File>} files */
async function attach(files) {
  try {
    await attachments.addFiles(files);
  } catch (e) {
    showError(e instanceof Error ? e.message : String(e));
  }
}

ui.composer.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void send();
});
ui.prompt.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    void send();
  }
});
ui.stop.addEventListener('click', () => running?.abort());
ui.newChat.addEventListener('click', newChat);
ui.imageInput.addEventListener('change', async () => {
  await attach(ui.imageInput.files ?? []);
  // Cleared so that choosing the same file again fires another change.
  ui.imageInput.value = '';
});
ui.keyForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  storeKey(ui.keyInput.value.trim());
  void loadModel();
});

/** @param {DragEvent} ev */
const hasFiles = (ev) => ev.dataTransfer?.types.includes('Files') ?? false;
document.addEventListener('dragover', (ev) => {
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  ui.composer.classList.add('dropping');
});
document.addEventListener('dragleave', (ev) => {
  if (ev.relatedTarget === null) ui.composer.classList.remove('dropping');
});
document.addEventListener('drop', (ev) => {
  ui.composer.classList.remove('dropping');
  if (!hasFiles(ev)) return;
  ev.preventDefault();
  void attach(ev.dataTransfer?.files ?? []);
});
document.addEventListener('paste', (ev) => {
  const files = [...(ev.clipboardData?.files ?? [])].filter((f) => f.type.startsWith('image/'));
  if (files.length === 0) return;
  // An image paste should not also paste its file name as text.
  ev.preventDefault();
  void attach(files);
});

setReady(false);
void loadModel();

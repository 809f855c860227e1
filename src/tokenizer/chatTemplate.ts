import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { InvalidRequestError, ModelLoadError } from '../errors.js';
import { BUILTIN_CHAT_TEMPLATES } from './templates/index.js';
import { prepareMessages, type ChatMessage, type ContentFormat, type ImageRef, type WrapStrings } from './chatMessages.js';
import { detectContentFormat } from './contentFormat.js';
import { specialTokensMap, type TokenizerConfigJson } from './tokenizer.js';

/** Where the template came from, reported so operators can tell which file won. */
export type ChatTemplateSource = 'override' | 'chat_template.jinja' | 'chat_template.json' | 'tokenizer_config.json';

export interface FoundChatTemplate {
  source: ChatTemplateSource;
  /** The file read, or null for template text given inline. */
  path: string | null;
  /** Template text by name; a single template is named 'default'. */
  templates: Map<string, string>;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new ModelLoadError(`cannot read chat template file ${path}: ${(e as Error).message}`);
  }
}

function readJsonObject(path: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readText(path));
  } catch (e) {
    if (e instanceof ModelLoadError) throw e;
    throw new ModelLoadError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ModelLoadError(`${path} does not hold a JSON object`);
  return v as Record<string, unknown>;
}

/** A `chat_template` value: a string, or (tokenizer_config) a list of {name, template}. */
function templatesFrom(value: unknown, path: string): Map<string, string> | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return new Map([['default', value]]);
  const entries: Array<[unknown, unknown]> = Array.isArray(value)
    ? value.map((e) => [(e as { name?: unknown })?.name, (e as { template?: unknown })?.template])
    : typeof value === 'object' ? Object.entries(value) : [];
  if (entries.length === 0) throw new ModelLoadError(`${path}: chat_template must be a string or a list of {name, template}`);
  const map = new Map<string, string>();
  for (const [name, text] of entries) {
    if (typeof name !== 'string' || typeof text !== 'string') {
      throw new ModelLoadError(`${path}: each chat_template entry needs a string name and template`);
    }
    map.set(name, text);
  }
  return map;
}

/** Named extra templates saved next to chat_template.jinja (additional_chat_templates/<name>.jinja). */
function additionalTemplates(modelDir: string): Map<string, string> {
  const dir = join(modelDir, 'additional_chat_templates');
  const map = new Map<string, string>();
  if (!existsSync(dir)) return map;
  for (const f of readdirSync(dir).sort()) {
    if (f.endsWith('.jinja')) map.set(f.slice(0, -'.jinja'.length), readText(join(dir, f)));
  }
  return map;
}

/**
 * Finds the chat template as transformers 4.50 does for a local folder: a raw
 * `chat_template.jinja` first, then the processor's legacy `chat_template.json`, then the
 * tokenizer's `tokenizer_config.json` "chat_template". (Later transformers releases read
 * chat_template.json before chat_template.jinja when both exist; released checkpoints ship one.)
 * `override` (e.g. --chat-template) is a file path or the template text itself and wins.
 */
/** Whether a model folder ships a chat template of its own. */
export function hasChatTemplate(modelDir: string): boolean {
  return findChatTemplate(modelDir) !== null;
}

export function findChatTemplate(modelDir: string, override?: string): FoundChatTemplate | null {
  if (override !== undefined) {
    const builtin = BUILTIN_CHAT_TEMPLATES[override];
    if (builtin) return { source: 'override', path: `builtin:${override}`, templates: new Map([['default', builtin]]) };
    if (existsSync(override) && statSync(override).isFile()) {
      // A .json override is read like chat_template.json; anything else is raw template text.
      const templates = override.endsWith('.json')
        ? templatesFrom(readJsonObject(override).chat_template, override)
        : new Map([['default', readText(override)]]);
      if (!templates) throw new ModelLoadError(`${override} has no "chat_template" key`);
      return { source: 'override', path: override, templates };
    }
    if (/\{[{%]/.test(override)) return { source: 'override', path: null, templates: new Map([['default', override]]) };
    throw new ModelLoadError(
      `chat template "${override}" is neither a built-in name (${Object.keys(BUILTIN_CHAT_TEMPLATES).join(', ')}), a file, nor template text`,
    );
  }
  const jinjaPath = join(modelDir, 'chat_template.jinja');
  if (existsSync(jinjaPath)) {
    const templates = additionalTemplates(modelDir);
    templates.set('default', readText(jinjaPath));
    return { source: 'chat_template.jinja', path: jinjaPath, templates };
  }
  const jsonPath = join(modelDir, 'chat_template.json');
  if (existsSync(jsonPath)) {
    const templates = templatesFrom(readJsonObject(jsonPath).chat_template, jsonPath);
    if (!templates) throw new ModelLoadError(`${jsonPath} has no "chat_template" key`);
    return { source: 'chat_template.json', path: jsonPath, templates };
  }
  const cfgPath = join(modelDir, 'tokenizer_config.json');
  if (existsSync(cfgPath)) {
    const templates = templatesFrom(readJsonObject(cfgPath).chat_template, cfgPath);
    if (templates) return { source: 'tokenizer_config.json', path: cfgPath, templates };
  }
  return null;
}

export interface ChatTemplateOptions {
  /** 'auto' (default) detects per template whether content is iterated as a list of parts. */
  contentFormat?: ContentFormat | 'auto';
  /** For 'string' templates: the text that stands for one image (vLLM puts these before the text). */
  imagePlaceholder?: string;
  /** For 'string' templates: keep images where they are among the parts, parts joined by newlines. */
  imagesInOrder?: boolean;
  /** bos_token, eos_token, ... for the template; default: read from tokenizer_config.json. */
  specialTokens?: Record<string, string | string[]>;
}

export interface RenderOptions {
  /** Ends the prompt with the assistant header. Default true (a serving request wants a reply). */
  addGenerationPrompt?: boolean;
  /** Leaves the last (assistant) message open so the model continues it, as transformers does. */
  continueFinalMessage?: boolean;
  tools?: unknown[] | null;
  documents?: unknown[] | null;
  /** Pick a named template; default: 'tool_use' when tools are given and it exists, else 'default'. */
  templateName?: string;
  /** Extra template variables (chat_template_kwargs), e.g. {add_vision_id: true}. */
  templateKwargs?: Record<string, unknown>;
}

export interface RenderedChat {
  prompt: string;
  /** Images in the order their placeholders appear in the prompt. */
  images: ImageRef[];
  contentFormat: ContentFormat;
  templateName: string;
}

interface Compiled {
  template: Template;
  format: ContentFormat;
  /** Learned on first failure: this template loops over content even when it is a string. */
  wrapStrings: WrapStrings;
}

const RESERVED = new Set(['messages', 'tools', 'documents', 'add_generation_prompt']);

export class ChatTemplate {
  readonly source: ChatTemplateSource;
  readonly path: string | null;
  readonly names: readonly string[];
  private readonly compiled = new Map<string, Compiled>();
  private readonly texts: Map<string, string>;
  private readonly specialTokens: Record<string, string | string[]>;
  private readonly imagePlaceholder: string | undefined;
  private readonly imagesInOrder: boolean;

  private constructor(found: FoundChatTemplate, opts: ChatTemplateOptions) {
    this.source = found.source;
    this.path = found.path;
    this.names = [...found.templates.keys()];
    this.texts = new Map(found.templates);
    this.specialTokens = opts.specialTokens ?? {};
    this.imagePlaceholder = opts.imagePlaceholder;
    this.imagesInOrder = opts.imagesInOrder ?? false;
    if (!found.templates.has('default') && !found.templates.has('tool_use')) {
      throw new ModelLoadError(`${found.path ?? 'chat template'}: several chat templates and none named "default" (${this.names.join(', ')})`);
    }
    for (const [name, text] of found.templates) {
      let template: Template;
      try {
        template = new Template(text);
      } catch (e) {
        throw new ModelLoadError(`${found.path ?? 'chat template'}: template "${name}" does not parse: ${(e as Error).message}`);
      }
      const format = !opts.contentFormat || opts.contentFormat === 'auto' ? detectContentFormat(template.parsed) : opts.contentFormat;
      this.compiled.set(name, { template, format, wrapStrings: 'none' });
    }
  }

  /** Loads the model folder's template (see findChatTemplate); special tokens from tokenizer_config.json. */
  static load(modelDir: string, override?: string, opts: ChatTemplateOptions = {}): ChatTemplate {
    const found = findChatTemplate(modelDir, override);
    if (!found) {
      throw new ModelLoadError(
        `no chat template in ${modelDir}: looked for chat_template.jinja, chat_template.json and "chat_template" in tokenizer_config.json`,
      );
    }
    let specialTokens = opts.specialTokens;
    if (!specialTokens) {
      const cfgPath = join(modelDir, 'tokenizer_config.json');
      specialTokens = existsSync(cfgPath) ? specialTokensMap(readJsonObject(cfgPath) as TokenizerConfigJson) : {};
    }
    return new ChatTemplate(found, { ...opts, specialTokens });
  }

  /** A template given as text (tests, --chat-template with inline text). */
  static fromString(text: string, opts: ChatTemplateOptions = {}): ChatTemplate {
    return new ChatTemplate({ source: 'override', path: null, templates: new Map([['default', text]]) }, opts);
  }

  /**
   * The Jinja source of the template `render` uses for a request with (or without) tools, or null
   * when there is none for it (several named templates and none fits).
   */
  templateText(opts: { tools?: boolean } = {}): string | null {
    if (opts.tools && this.texts.has('tool_use')) return this.texts.get('tool_use')!;
    return this.texts.get('default') ?? null;
  }

  contentFormat(name = 'default'): ContentFormat {
    return this.pick(name).format;
  }

  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    return this.renderChat(messages, opts).prompt;
  }

  renderChat(messages: readonly ChatMessage[], opts: RenderOptions = {}): RenderedChat {
    const name = this.chooseName(opts);
    const c = this.pick(name);
    const addGen = opts.addGenerationPrompt ?? !opts.continueFinalMessage;
    if (addGen && opts.continueFinalMessage) {
      throw new InvalidRequestError('add_generation_prompt and continue_final_message cannot both be set', 'continue_final_message');
    }
    const vars: Record<string, unknown> = { ...this.specialTokens };
    for (const [k, v] of Object.entries(opts.templateKwargs ?? {})) if (!RESERVED.has(k)) vars[k] = v;
    // transformers passes tools=None / documents=None; in @huggingface/jinja an undefined name
    // is `not none`, so pass null explicitly (Llama 3.1 tests `tools is not none`).
    vars.tools = opts.tools ?? null;
    vars.documents = opts.documents ?? null;
    vars.add_generation_prompt = addGen;

    const run = (wrap: WrapStrings) => {
      const prep = prepareMessages(messages, { format: c.format, wrapStringContent: wrap, imagePlaceholder: this.imagePlaceholder, imagesInOrder: this.imagesInOrder });
      return { prep, prompt: c.template.render({ ...vars, messages: prep.messages }) };
    };
    // @huggingface/jinja throws where Python would iterate a string's characters (templates that
    // loop over content without checking `is string`): retry with string content as a text part,
    // first keeping system messages strings (templates that `trim` them), then for all. The mode
    // that worked is tried first next time.
    const modes: WrapStrings[] = c.format === 'openai' && messages.some((m) => typeof m?.content === 'string') ? ['none', 'nonSystem', 'all'] : ['none'];
    const order = [c.wrapStrings, ...modes.filter((m) => m !== c.wrapStrings)].filter((m) => modes.includes(m));
    let result: ReturnType<typeof run> | null = null;
    let first: unknown = null;
    for (const mode of order) {
      try {
        result = run(mode);
        c.wrapStrings = mode;
        break;
      } catch (e) {
        if (e instanceof InvalidRequestError) throw e;
        first ??= e;
      }
    }
    if (!result) throw templateError(first);
    let prompt = result.prompt;
    if (opts.continueFinalMessage) prompt = cutAfterFinalMessage(prompt, messages[messages.length - 1]);
    return { prompt, images: result.prep.images, contentFormat: c.format, templateName: name };
  }

  private chooseName(opts: RenderOptions): string {
    if (opts.templateName !== undefined) {
      if (!this.compiled.has(opts.templateName)) {
        throw new InvalidRequestError(`unknown chat template "${opts.templateName}" (have ${this.names.join(', ')})`, 'chat_template');
      }
      return opts.templateName;
    }
    if (opts.tools && this.compiled.has('tool_use')) return 'tool_use'; // as transformers: `tools is not None`
    if (this.compiled.has('default')) return 'default';
    throw new InvalidRequestError(`this model's chat templates (${this.names.join(', ')}) need tools or a template name`, 'chat_template');
  }

  private pick(name: string): Compiled {
    const c = this.compiled.get(name);
    if (!c) throw new InvalidRequestError(`unknown chat template "${name}"`, 'chat_template');
    return c;
  }
}

function templateError(e: unknown): InvalidRequestError {
  // Templates reject bad conversations with raise_exception (e.g. roles must alternate): a client error.
  return new InvalidRequestError(`chat template error: ${(e as Error)?.message ?? String(e)}`, 'messages');
}

/** transformers' continue_final_message: cut the prompt right after the last message's text. */
function cutAfterFinalMessage(prompt: string, last: ChatMessage | undefined): string {
  let text: string | undefined;
  const content = last?.content;
  if (typeof content === 'string') text = content;
  else if (Array.isArray(content)) {
    for (let i = content.length - 1; i >= 0 && text === undefined; i--) {
      const p = content[i] as { type?: unknown; text?: unknown };
      if (p.type === 'text' && typeof p.text === 'string') text = p.text;
    }
  }
  if (text === undefined) {
    throw new InvalidRequestError('continue_final_message needs text in the final message', 'continue_final_message');
  }
  const stripped = text.trim();
  const at = prompt.lastIndexOf(stripped);
  if (at < 0) throw new InvalidRequestError('the final message does not appear in the rendered prompt', 'continue_final_message');
  const lstripped = text.trimStart();
  // Keep the message's own trailing spaces if the template kept them, else cut at the stripped end.
  const end = prompt.slice(at, at + lstripped.length) === text ? at + lstripped.length : at + stripped.length;
  return prompt.slice(0, end);
}

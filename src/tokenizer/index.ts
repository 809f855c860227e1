export { TextTokenizer, specialTokensMap, tokenContent, type DecodeOptions, type EncodeOptions, type TokenizerConfigJson } from './tokenizer.js';
export {
  ChatTemplate,
  findChatTemplate,
  type ChatTemplateOptions,
  type ChatTemplateSource,
  type FoundChatTemplate,
  type RenderedChat,
  type RenderOptions,
} from './chatTemplate.js';
export {
  prepareMessages,
  type ChatMessage,
  type ChatRole,
  type ContentFormat,
  type ContentPart,
  type ImagePart,
  type ImageRef,
  type ImageUrlPart,
  type TextPart,
} from './chatMessages.js';
export { detectContentFormat } from './contentFormat.js';
export { expandImagePlaceholders, locateImages, type ImageRange } from './placeholders.js';
export { IncrementalDetokenizer, type DetokenizerBackend, type DetokenizerOptions } from './detokenizer.js';
export { StopStringMatcher, type StopResult } from './stopStrings.js';

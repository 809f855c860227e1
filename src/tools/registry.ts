import { makeToolCallParser } from './parser.js';
import type { ToolCallFormat, ToolCallParser } from './types.js';

/** The tool-call formats, by SGLang's `--tool-call-parser` names. */
export const TOOL_CALL_PARSERS: readonly ToolCallFormat[] = Object.freeze(['qwen25', 'llama3', 'mistral'] as const);

const PARSERS = new Map<string, ToolCallParser>(TOOL_CALL_PARSERS.map((name) => [name, makeToolCallParser(name)]));

/** The parser of a format; throws for an unknown name, listing the valid ones. */
export function toolCallParser(name: string): ToolCallParser {
  const parser = PARSERS.get(name);
  if (!parser) throw new Error(`unknown tool call parser "${name}"; valid: ${TOOL_CALL_PARSERS.join(', ')}`);
  return parser;
}

/**
 * The format a model family writes calls in, from config.json's `architectures[0]`, `model_type`
 * and the text model's `model_type` (`text_config.model_type`). Families without a format of
 * their own get `qwen25`, which the fallback system prompt teaches.
 */
export function defaultToolCallParser(architecture: string, modelType?: string, textModelType?: string): ToolCallFormat {
  const text = textModelType?.toLowerCase();
  switch (architecture) {
    case 'Qwen2VLForConditionalGeneration':
    case 'Qwen2_5_VLForConditionalGeneration':
      return 'qwen25';
    case 'MllamaForConditionalGeneration':
      return 'llama3';
  }
  if (modelType === 'mllama') return 'llama3';
  if (text === 'llama') return 'llama3';
  if (text === 'mistral') return 'mistral';
  return 'qwen25';
}

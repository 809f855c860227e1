/** One function the caller offers the model (OpenAI `tools[i].function`). */
export interface ToolFunction {
  name: string;
  description?: string;
  /** A JSON schema for the arguments object; absent means the function takes no parameters. */
  parameters?: Record<string, unknown>;
}

/** OpenAI `tool_choice`, with a named function reduced to its name. */
export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };

/** A call found in the model's output. */
export interface ParsedToolCall {
  name: string;
  /** The arguments object as the model wrote it (JSON text of an object). */
  arguments: string;
}

export type ToolStreamEvent =
  /** Text for `delta.content`. */
  | { type: 'content'; text: string }
  /** A call begins: its name is known. */
  | { type: 'call'; index: number; name: string }
  /** A fragment of that call's arguments JSON. */
  | { type: 'arguments'; index: number; text: string };

export interface ToolCallStream {
  /** Feeds the next piece of output text; returns what can be told about it now. */
  push(delta: string): ToolStreamEvent[];
  /** The output is over: flushes what was held back. */
  end(): ToolStreamEvent[];
}

export type ToolCallFormat = 'qwen25' | 'llama3' | 'mistral';

export interface ToolCallParser {
  readonly name: ToolCallFormat;
  /** Splits a whole output into content (null if none but whitespace) and calls. Malformed call text stays content. */
  parse(text: string): { content: string | null; calls: ParsedToolCall[] };
  /** An incremental parser over text deltas. */
  stream(): ToolCallStream;
}

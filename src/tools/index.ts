export type { ParsedToolCall, ToolCallFormat, ToolCallParser, ToolCallStream, ToolChoice, ToolFunction, ToolStreamEvent } from './types.js';
export { TOOL_CALL_PARSERS, defaultToolCallParser, toolCallParser } from './registry.js';
export { toolCallStructuralTag } from './constraint.js';
export { templateRendersTools, toolSystemPrompt } from './prompt.js';
export { ToolRequestError, validateTools } from './validate.js';
export { hasToolTurns, templateRendersToolCalls, toolCallsText, toolHistoryAsText } from './history.js';

import { availableParallelism } from 'node:os';
import { GraphBuilder } from '../runtime/onnx/graph.js';
import { GraphSession } from '../runtime/session.js';
import { SessionWeights } from '../runtime/sessionWeights.js';
import { ModelLoadOptions } from './model.js';

/**
 * Creates a model's ONNX Runtime sessions one after the other (each one's load peak before
 * the next), quantizing each one's weights first when they are not cached, with progress.
 */
export async function createSessions(parts: Array<[what: string, graph: { g: GraphBuilder; w: SessionWeights }]>, opts: ModelLoadOptions): Promise<GraphSession[]> {
  const sessions: GraphSession[] = [];
  for (const [what, part] of parts) {
    await part.w.prepare((f) => opts.onProgress?.(`quantizing ${what} (${Math.round(f * 100)}%)`), opts.intraOpThreads || availableParallelism());
    opts.onProgress?.(`building ${what}`);
    sessions.push(await GraphSession.create(part.g, part.w, opts));
  }
  return sessions;
}

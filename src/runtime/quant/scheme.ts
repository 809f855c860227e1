/**
 * The `quantization_config` of a checkpoint's config.json, reduced to what the
 * repackers need; refuses the variants they cannot represent.
 */
import { ModelLoadError } from '../../errors.js';
import { GPTQ_ACT_ORDER_UNSUPPORTED, GptqCheckpointFormat } from './gptq.js';

export type QuantScheme =
  | { method: 'awq'; bits: 4; groupSize: number; modulesToNotConvert: string[] }
  | { method: 'gptq'; bits: 4 | 8; groupSize: number; sym: boolean; checkpointFormat: GptqCheckpointFormat; modulesToNotConvert: string[] };

/** null when there is no quantization_config (a float checkpoint). */
export function parseQuantizationConfig(config: unknown): QuantScheme | null {
  if (config === undefined || config === null) return null;
  if (typeof config !== 'object') throw new ModelLoadError('quantization_config is not an object');
  const c = config as Record<string, unknown>;
  const method = String(c.quant_method ?? '').toLowerCase();
  if (method !== 'awq' && method !== 'gptq') throw new ModelLoadError(`quantization method ${JSON.stringify(c.quant_method)} is not supported (awq or gptq)`);
  const bits = Number(c.bits ?? c.w_bit);
  const groupSize = Number(c.group_size ?? c.q_group_size);
  const skip = Array.isArray(c.modules_to_not_convert) ? c.modules_to_not_convert.map(String) : [];
  if (!Number.isInteger(groupSize) || (groupSize !== -1 && groupSize <= 0)) throw new ModelLoadError(`quantization_config: bad group_size ${String(c.group_size)}`);
  if (method === 'awq') {
    const version = String(c.version ?? 'gemm').toLowerCase();
    // gemv / gemv_fast / marlin pack differently.
    if (version !== 'gemm') throw new ModelLoadError(`AWQ version ${JSON.stringify(c.version)} is not supported (only "gemm")`);
    if (bits !== 4) throw new ModelLoadError(`AWQ with ${bits} bits is not supported (only 4)`);
    if (c.zero_point === false) throw new ModelLoadError('AWQ without zero points is not supported');
    return { method, bits, groupSize, modulesToNotConvert: skip };
  }
  if (bits !== 4 && bits !== 8) throw new ModelLoadError(`GPTQ with ${bits} bits is not supported (4 or 8)`);
  if (c.desc_act === true) throw new ModelLoadError(GPTQ_ACT_ORDER_UNSUPPORTED);
  // transformers/optimum write checkpoint_format; GPTQModel's own config says format.
  const fmt = String(c.checkpoint_format ?? c.format ?? 'gptq').toLowerCase();
  if (fmt !== 'gptq' && fmt !== 'gptq_v2') throw new ModelLoadError(`GPTQ checkpoint_format ${JSON.stringify(fmt)} is not supported ("gptq" or "gptq_v2")`);
  return { method, bits, groupSize, sym: c.sym !== false, checkpointFormat: fmt, modulesToNotConvert: skip };
}
